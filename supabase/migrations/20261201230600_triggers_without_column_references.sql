-- autoembed 20261201230600_triggers_without_column_references.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201230600_triggers_without_column_references.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230600_triggers_without_column_references.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- Triggers that name no column of a watched table. The row-level trigger that flagged a content or
-- key change (autoembed_mark_changed) and the BEFORE trigger that cleared a stale vector
-- (autoembed_clear_embedding) named the content and key columns, or called the content function,
-- in their WHEN clauses: inside the application's UPDATE, with its rights, six times a row, and in
-- the way of ALTER COLUMN ... TYPE and of generated content columns. The flag's WHEN clause now
-- compares masked rows and the statement trigger clears stale vectors
-- (db/idempotent/040_triggers.sql, which installs the new triggers on every watched table); here
-- the clearing trigger and its function go.
do $$
declare
    watched regclass;
begin
    for watched in select s.source from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        execute format('drop trigger if exists autoembed_clear_embedding on %s', watched);
    end loop;
end
$$;
drop function if exists autoembed.clear_embedding();
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230600_triggers_without_column_references.sql', '8c7b5d5dee0585857e9b3149b63909255523886aff0c00d9b4e73a2ab8d6883a');
end
$autoembed_guard$;
