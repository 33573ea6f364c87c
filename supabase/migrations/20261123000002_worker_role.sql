-- autoembed 20261123000002_worker_role.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261123000002_worker_role.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261123000002_worker_role.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed worker role: least privilege for `autoembed worker`, and triggers that work whoever
-- writes a watched table.
--
-- The worker connects as any LOGIN role granted autoembed_worker (not a superuser, no privilege
-- on the watched tables):
--     create role embedder login password '...';
--     grant autoembed_worker to embedder;
--     DATABASE_URL=postgresql://embedder:...@host/db autoembed worker
--
-- It reads and writes watched rows only through SECURITY DEFINER functions owned by the
-- migration owner, so row level security (even FORCE'd) does not hide rows from it. That owner
-- must therefore be a superuser or have BYPASSRLS (plain PostgreSQL: the superuser that ran the
-- migrations; Supabase: the `postgres` role). The functions run content functions registered with
-- autoembed.watch(..., content => 'fn') with the owner's rights too: register only functions that
-- trusted roles own. Nobody but the owner may execute them unless granted, below.

-- 1. The role ---------------------------------------------------------------------------------------
do $$
begin
    if not exists (select from pg_roles where rolname = 'autoembed_worker') then
        create role autoembed_worker nologin;
    end if;
end
$$;
comment on role autoembed_worker is 'Grant to the login role `autoembed worker` connects as: queue access and the worker-facing autoembed functions, nothing else.';

-- 2. Worker-facing functions: run as their owner, callable only by autoembed_worker ------------------
alter function autoembed.load_content(int, text[]) security definer;
alter function autoembed.write_embeddings(int, text, text, text[], uuid[], vector[]) security definer;
alter function autoembed.record_failures(int, text[], uuid[], text[], text[], int[]) security definer;
alter function autoembed.claim_rows(int, text[], int) security definer;
alter function autoembed.release_claims(int, text[]) security definer;

revoke execute on function autoembed.load_content(int, text[]) from public;
revoke execute on function autoembed.write_embeddings(int, text, text, text[], uuid[], vector[]) from public;
revoke execute on function autoembed.record_failures(int, text[], uuid[], text[], text[], int[]) from public;
revoke execute on function autoembed.claim_rows(int, text[], int) from public;
revoke execute on function autoembed.release_claims(int, text[]) from public;

grant usage on schema autoembed to autoembed_worker;
grant select on autoembed.sources to autoembed_worker;  -- the worker's `sources` query
grant execute on function autoembed.load_content(int, text[]) to autoembed_worker;
grant execute on function autoembed.write_embeddings(int, text, text, text[], uuid[], vector[]) to autoembed_worker;
grant execute on function autoembed.record_failures(int, text[], uuid[], text[], text[], int[]) to autoembed_worker;
grant execute on function autoembed.claim_rows(int, text[], int) to autoembed_worker;
grant execute on function autoembed.release_claims(int, text[]) to autoembed_worker;

-- 3. The queue: read (which sets the visibility timeout), delete, archive, delay; depth ---------------
grant usage on schema pgmq to autoembed_worker;
grant select, update, delete on pgmq.q_autoembed_jobs to autoembed_worker;
grant select, insert on pgmq.a_autoembed_jobs to autoembed_worker;
-- The worker never sends a job, so it needs no sequence. pgmq's functions are executable by PUBLIC
-- unless a platform revoked that; grant the ones the worker calls where it cannot run them yet.
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

-- 4. Triggers: any role that may write a watched table can, without access to autoembed or pgmq ------
-- The statement triggers run as their owner (trigger functions cannot be called directly), so an
-- application role (Supabase's `authenticated`, say) needs no grant on autoembed's tables or the
-- queue; and enqueue, now reached only through them and the owner's SQL API, is closed to PUBLIC,
-- so nobody else can forge jobs.
alter function autoembed.on_write() security definer;
revoke execute on function autoembed.enqueue(int, text[]) from public;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261123000002_worker_role.sql', '3759331b62a3eaa702124a97b673d33d25d1eb5cd177aac27573dc170e0fe0f3');
end
$autoembed_guard$;
