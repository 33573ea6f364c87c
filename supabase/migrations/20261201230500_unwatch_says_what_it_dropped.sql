-- autoembed 20261201230500_unwatch_says_what_it_dropped.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
-- It runs once, whichever applies it first (`supabase db push` or `autoembed migrate`): both
-- record it in autoembed.schema_migrations.
create schema if not exists autoembed;
create table if not exists autoembed.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);
select pg_advisory_xact_lock(hashtext('autoembed.migrate'));
do $autoembed_guard$
declare
    done_names constant text[] := array['20261201230500_unwatch_says_what_it_dropped.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230500_unwatch_says_what_it_dropped.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed.unwatch returns a sentence saying what it dropped instead of nothing (an empty row in
-- psql): a new return type, so the old signature goes; db/idempotent/020_watch.sql defines the new one.
drop function if exists autoembed.unwatch(regclass);  -- a fresh install has none yet
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230500_unwatch_says_what_it_dropped.sql', '5c803efbfdc32025488cc260c26795d33cdb839ef64e4a2440904369d7041e7c');
end
$autoembed_guard$;
