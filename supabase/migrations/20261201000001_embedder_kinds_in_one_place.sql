-- autoembed 20261201000001_embedder_kinds_in_one_place.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201000001_embedder_kinds_in_one_place.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201000001_embedder_kinds_in_one_place.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- The embedder kinds are declared once, in the package (autoembed.embedders.registry.KINDS), and
-- mirrored by autoembed.embedder_kinds() (db/idempotent/020_watch.sql), which watch() checks and a
-- test holds equal to the declaration. The table's own check listed them a third time, so a new
-- kind needed a migration: it goes.
alter table autoembed.sources drop constraint if exists sources_embedder_check;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201000001_embedder_kinds_in_one_place.sql', '0ebfd54104a36c52685c4f2748ee962556c323bc9ab0bf3aff2b27e89c765029');
end
$autoembed_guard$;
