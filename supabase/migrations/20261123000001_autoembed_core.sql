-- autoembed 20261123000000_baseline.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261123000000_baseline.sql', '20261123000001_autoembed_core.sql', '20261123000002_worker_role.sql', '20261123000003_http_drain.sql', '20261123000004_chunked_jobs.sql', '20261123000005_search_role.sql', '20261123000006_key_ranges_and_key_changes.sql', '20261123000007_records_only_for_existing_keys.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261123000000_baseline.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed 0.2 baseline: the one-time schema steps of migrations 20261123000001 to 20261123000007,
-- for a fresh install, in their place (those seven stay as they were, so installs that applied some
-- of them go on from there). No functions or views: their current definitions live in
-- db/idempotent/, which every `autoembed migrate` re-applies after the pending migrations.
-- Runs on plain PostgreSQL (pgvector in public, pgmq installed from its SQL by `autoembed migrate`)
-- and on Supabase (pgvector in `extensions`, pgmq, pg_cron and pg_net as extensions).
-- replaces: 20261123000001_autoembed_core.sql
-- replaces: 20261123000002_worker_role.sql
-- replaces: 20261123000003_http_drain.sql
-- replaces: 20261123000004_chunked_jobs.sql
-- replaces: 20261123000005_search_role.sql
-- replaces: 20261123000006_key_ranges_and_key_changes.sql
-- replaces: 20261123000007_records_only_for_existing_keys.sql

-- 1. Extensions --------------------------------------------------------------------------------
do $$
declare
    ext_schema text := case when to_regnamespace('extensions') is not null then 'extensions' else 'public' end;
begin
    if not exists (select from pg_extension where extname = 'vector') then
        if not exists (select from pg_available_extensions where name = 'vector') then
            raise exception 'autoembed needs pgvector (extension "vector"), which is not installed on this server'
                using hint = 'On Debian 12 scripts/setup-system.sh builds it; on Supabase it is always available.';
        end if;
        execute format('create extension vector with schema %I', ext_schema);
    end if;

    if not exists (select from pg_extension where extname = 'pgmq') and to_regnamespace('pgmq') is null then
        if not exists (select from pg_available_extensions where name = 'pgmq') then
            raise exception 'autoembed needs pgmq: neither the extension nor its SQL-only install is present'
                using hint = '`autoembed migrate` installs the SQL-only pgmq first; applying files by hand, run the pgmq Python package''s pgmq/sql/pgmq.sql before this file.';
        end if;
        create extension pgmq;
    end if;

    -- Optional: pg_cron lives in one database per cluster (cron.database_name) and must be preloaded.
    -- cron.database_name is not read: only superusers may (Supabase's postgres may not); creating the
    -- extension outside that database fails, and is caught.
    if not exists (select from pg_extension where extname = 'pg_cron')
       and exists (select from pg_available_extensions where name = 'pg_cron') then
        begin
            create extension pg_cron;
        exception when others then
            raise notice 'autoembed: pg_cron not enabled (%): the sweep job is not scheduled', sqlerrm;
        end;
    end if;

    -- Optional: pg_net (Supabase) lets the database call HTTP endpoints itself.
    if not exists (select from pg_extension where extname = 'pg_net')
       and exists (select from pg_available_extensions where name = 'pg_net') then
        begin
            execute format('create extension pg_net with schema %I', ext_schema);
        exception when others then
            raise notice 'autoembed: pg_net not enabled (%)', sqlerrm;
        end;
    end if;
end
$$;

select pgmq.create('autoembed_jobs') where not exists (select from pgmq.meta where queue_name = 'autoembed_jobs');

-- 2. Registrations and per-row state -------------------------------------------------------------
create schema if not exists autoembed;

create table autoembed.sources (
    id int generated always as identity primary key,
    source regclass not null unique,
    table_name text not null,                 -- schema-qualified name at watch time, for reports
    pk_column name not null,                  -- names as at watch time; the attnums below follow renames
    content_column name,                      -- either a column ...
    content_function regprocedure,            -- ... or fn(row) returns text
    embedding_column name not null,
    pk_attnum smallint not null,
    content_attnum smallint,
    embedding_attnum smallint not null,
    dimensions int not null check (dimensions > 0),
    embedder text not null check (embedder in ('local', 'openai', 'hashing')),
    model text not null check (model <> ''),
    distance text not null check (distance in ('cosine', 'l2', 'inner_product')),
    max_attempts int not null check (max_attempts >= 1),
    clear_on_change boolean not null,
    last_success_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((content_column is null) <> (content_function is null))
);
comment on table autoembed.sources is 'Tables watched by autoembed: one row per autoembed.watch() call.';

create table autoembed.row_state (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    content_hash uuid not null,               -- md5 of the content the stored vector embeds
    embedded_at timestamptz not null default now(),
    primary key (source_id, pk)
);
comment on table autoembed.row_state is 'Hash of the content behind each stored vector; lets the worker skip unchanged rows.';

create table autoembed.failures (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    content_hash uuid,
    error_class text not null,
    error_message text not null,
    attempts int not null,
    first_failed_at timestamptz not null default now(),
    failed_at timestamptz not null default now(),
    primary key (source_id, pk)
);
comment on table autoembed.failures is 'Rows that could not be embedded, with the last error. autoembed.retry_failures() re-drives them.';


-- Rows a worker is embedding right now (autoembed.claim_rows). Expires with the job's visibility
-- timeout, so a crashed worker's claims lapse with its jobs. Unlogged: claims are worthless after a
-- server crash, and the jobs reappear anyway.
create unlogged table autoembed.claims (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    claimed_until timestamptz not null,
    primary key (source_id, pk)
);

create type autoembed.loaded_row as (pk text, content text, content_hash uuid, up_to_date boolean, error text);

-- Queue messages live for seconds: compressing them (TOAST) costs the writer and saves nothing.
do $$
begin
    alter table pgmq.q_autoembed_jobs alter column message set storage external;
exception when insufficient_privilege then
    raise notice 'autoembed: queue messages stay compressed (%)', sqlerrm;
end
$$;

-- 3. Roles --------------------------------------------------------------------------------------------
-- autoembed_worker: grant to the login `autoembed worker` connects as. It reads and writes watched
-- rows only through SECURITY DEFINER functions (db/idempotent/), granted to it there.
-- autoembed_search: grant to application roles that call autoembed.search (which runs as its caller,
-- so they also need SELECT on the watched tables, and RLS applies).
do $$
begin
    if not exists (select from pg_roles where rolname = 'autoembed_worker') then
        create role autoembed_worker nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'autoembed_search') then
        create role autoembed_search nologin;
    end if;
end
$$;
comment on role autoembed_worker is 'Grant to the login role `autoembed worker` connects as: queue access and the worker-facing autoembed functions, nothing else.';
comment on role autoembed_search is 'Grant to application roles that call autoembed.search (they also need SELECT on the watched tables; RLS applies).';

grant usage on schema autoembed to autoembed_worker, autoembed_search;
grant select on autoembed.sources to autoembed_worker, autoembed_search;

-- The queue: read (which sets the visibility timeout), delete, archive, delay. The worker never
-- sends a job, so it needs no sequence.
grant usage on schema pgmq to autoembed_worker;
grant select, update, delete on pgmq.q_autoembed_jobs to autoembed_worker;
grant select, insert on pgmq.a_autoembed_jobs to autoembed_worker;
-- pgmq's functions are executable by PUBLIC unless a platform revoked that; grant the ones the
-- worker calls where it cannot run them yet.
do $$
declare
    fn regprocedure;
begin
    for fn in
        select p.oid::regprocedure from pg_proc p
        where p.pronamespace = 'pgmq'::regnamespace
          and p.proname in ('read', 'delete', 'archive', 'set_vt', 'format_table_name')
          and not has_function_privilege('autoembed_worker', p.oid, 'execute')
    loop
        execute format('grant execute on function %s to autoembed_worker', fn);
    end loop;
end
$$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261123000000_baseline.sql', '9a3efa671e61259c36d8f98d221c4a2c0bbc8a878dac6ffe237a6a125efb42c0'), ('20261123000001_autoembed_core.sql', '50ec9d8f214642768c40de66185e6b1f4f88ac5de890cde3db997022931224fa'), ('20261123000002_worker_role.sql', '3759331b62a3eaa702124a97b673d33d25d1eb5cd177aac27573dc170e0fe0f3'), ('20261123000003_http_drain.sql', 'b7a642371e42b1b2b52f388d390b1ddfb19671d208e4f2e506ae37d350cca388'), ('20261123000004_chunked_jobs.sql', 'bc9c3fc5642e4a26cc142de062d1e8c2f483b2856df4a3f2a7badf655e85d9cb'), ('20261123000005_search_role.sql', 'e557a8a85030885bca7a79993e5bd941b681bd1dd437a00cf26f5274980afa56'), ('20261123000006_key_ranges_and_key_changes.sql', '3542dd073271fbb61ea822d925e52b496440b5f9f92b5ca7b065389eccd76552'), ('20261123000007_records_only_for_existing_keys.sql', '378f83f6032ccd55c73db1d805525036f9ce0d26c2839ebd6fde1088fcc40e9d');
end
$autoembed_guard$;
