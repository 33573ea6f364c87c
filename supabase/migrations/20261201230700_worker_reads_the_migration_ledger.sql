-- autoembed 20261201230700_worker_reads_the_migration_ledger.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201230700_worker_reads_the_migration_ledger.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230700_worker_reads_the_migration_ledger.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- A worker's readiness (GET /readyz, and the check `autoembed worker` makes before it starts) compares
-- the migrations this database applied with those the package carries: a login granted only
-- autoembed_worker may read which were applied (names, checksums and times; nothing else).
grant select on autoembed.schema_migrations to autoembed_worker;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230700_worker_reads_the_migration_ledger.sql', 'bf11ac3f7465d87a40a5dd03d488661baadbdc9df600225152b8e3b7d3547e32');
end
$autoembed_guard$;
