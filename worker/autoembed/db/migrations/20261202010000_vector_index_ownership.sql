-- autoembed may own the vector index of a watched column: autoembed.sources says which kind the
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
