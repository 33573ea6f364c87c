-- autoembed 20261202010000_vector_index_ownership.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261202010000_vector_index_ownership.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261202010000_vector_index_ownership.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed may own the vector index of a watched column: autoembed.sources says which kind the
-- watch wants (autoembed.watch(..., index => 'hnsw' | 'ivfflat' | 'none'); earlier watches want
-- none) and what the worker last found in the way of building it. autoembed.watch takes the new
-- argument and autoembed.status gains an `index` column: create or replace can change neither, so
-- the old signatures go here and db/idempotent creates the new ones. The HNSW operator class look-up
-- of chunk tables (chunk_opclass) became autoembed.vector_opclass, which takes the access method.
alter table autoembed.sources
    add column index_kind text not null default 'none',
    add column index_problem text,
    add column index_problem_at timestamptz,
    add constraint sources_index_kind_check check (index_kind in ('hnsw', 'ivfflat', 'none'));
comment on column autoembed.sources.index_kind is 'The vector index the watch wants on its embedding column, built by the worker once the backfill is done: hnsw, ivfflat or none.';
comment on column autoembed.sources.index_problem is 'Why the worker last could not build the wanted index (shown by autoembed.status while not older than the watch); NULL once built.';
comment on column autoembed.sources.index_problem_at is 'When the worker reported `index_problem`.';

drop view if exists autoembed.status;
do $$
declare
    old regprocedure;
begin
    for old in
        select p.oid::regprocedure from pg_proc p
        join (values ('watch', 16), ('source_status', 0), ('chunk_opclass', 1)) o (proname, pronargs)
          on o.proname = p.proname and o.pronargs = p.pronargs
        where p.pronamespace = 'autoembed'::regnamespace
    loop
        execute format('drop function %s', old);
    end loop;
end
$$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261202010000_vector_index_ownership.sql', '882bdb7231939b3f6859b18b42dee5da47f80bf1bea5e248ab30902ac3ac7b39');
end
$autoembed_guard$;
