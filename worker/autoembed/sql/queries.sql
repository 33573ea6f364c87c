-- Runtime queries of the worker and CLI, one named block each. Loaded once by autoembed.queries.

-- name: pgmq_state
select exists (select from pg_namespace where nspname = 'pgmq'),
       exists (select from pg_available_extensions where name = 'pgmq');

-- name: migrate_lock
select pg_advisory_lock(hashtext('autoembed.migrate'));

-- name: migrate_unlock
select pg_advisory_unlock(hashtext('autoembed.migrate'));

-- name: migration_ledger
create schema if not exists autoembed;
create table if not exists autoembed.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);

-- name: supabase_ledger_exists
select to_regclass('supabase_migrations.schema_migrations') is not null;

-- name: supabase_versions
select version from supabase_migrations.schema_migrations;

-- name: applied_migrations
select name, checksum from autoembed.schema_migrations order by name;

-- name: record_migration
insert into autoembed.schema_migrations (name, checksum) values (%s, %s);

-- name: sources
select id, table_name, embedder, model, dimensions, max_attempts,
       chunk_table is not null, chunk_tokens, chunk_overlap, query_prompt, passage_prompt
from autoembed.sources order by id;

-- name: load_content
select pk, content, content_hash, up_to_date, error, error_kind from autoembed.load_content(%s, %s);

-- name: writeback_lock_timeout
set local lock_timeout = '200ms';

-- name: write_embeddings
select pk from autoembed.write_embeddings(%s, %s, %s, %s, %s, %b);  -- vectors in binary: ~50x cheaper than text

-- name: load_chunk_vectors
select pk, chunk_hash, embedding from autoembed.load_chunk_vectors(%s, %s);

-- name: write_chunks
select pk from autoembed.write_chunks(%s, %s, %s, %s, %s, %b, %s, %s, %s, %s, %s, %s, %s, %b);

-- name: record_failures
select pk from autoembed.record_failures(%s, %s, %s, %s, %s, %s);

-- name: read_jobs
-- text: the worker decodes it (jobs.py); a worker limited to some watches reads only theirs
select msg_id, read_ct, message::text from autoembed.read_jobs(%s, %s, autoembed.watch_ids(%s::text[], false));

-- name: release_jobs
select autoembed.release_jobs(%s);

-- name: report_problem
select autoembed.report_problem(%s, %s);

-- name: source_table_exists
select exists (select from autoembed.sources s join pg_class c on c.oid = s.source where s.id = %s);

-- name: migrated
select exists (select from pg_extension where extname = 'vector'),
       exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'autoembed' and c.relname = 'sources');

-- name: worker_role
select current_user::text,
       case when to_regrole('autoembed_worker') is not null then pg_has_role(current_user, 'autoembed_worker', 'member') end;

-- name: missing_grants_installed
select to_regprocedure('autoembed.missing_grants()') is not null;

-- name: missing_grants
select statement, run_as from autoembed.missing_grants();

-- name: enqueue
select autoembed.enqueue(%s, %s, %s, %s);

-- name: queue_depth
-- all rows, and those of the watches this worker serves (NULL: all) but of the sources it cannot serve
select autoembed.queue_rows(),
       (select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
        where (autoembed.job_source(q.message) is null or autoembed.job_source(q.message) <> all (%(excluding)s::int[]))
          and (%(watches)s::text[] is null
               or autoembed.job_source(q.message) = any (autoembed.watch_ids(%(watches)s::text[], false))));

-- name: queue_gauges
select autoembed.queue_rows(),
       coalesce(extract(epoch from clock_timestamp() - min(q.enqueued_at)), 0)::float8
from pgmq.q_autoembed_jobs q;

-- name: source_dimensions
select dimensions from autoembed.sources where id = %s;

-- name: search_settings
select embedder, model, dimensions, query_prompt from autoembed.search_settings(%s::regclass, %s);

-- name: search
select pk, content, distance, chunk, chunk_position from autoembed.search(%s::regclass, %s, %s, %s, %s);  -- the vector's type travels with it (wherever pgvector lives)

-- name: status
select * from autoembed.status order by source_id;

-- name: queue_status
select * from autoembed.queue_status;

-- name: capabilities
select * from autoembed.capabilities();

-- name: failures
select s.table_name as source, s.name as watch, f.pk, f.error_class, f.error_message, f.attempts, f.failed_at
from autoembed.failures f join autoembed.sources s on s.id = f.source_id
where %(table)s::text is null or s.id = (autoembed.source_by_table(%(table)s::regclass, %(watch)s)).id
order by f.failed_at desc
limit %(limit)s;

-- name: watch
select autoembed.watch(%(table)s::regclass, %(content)s, %(embedding_column)s, %(embedder)s, %(model)s,
                       %(distance)s, %(max_attempts)s, %(clear_on_change)s, %(backfill)s,
                       chunks => %(chunks)s, chunk_tokens => %(chunk_tokens)s, chunk_overlap => %(chunk_overlap)s,
                       chunk_index => %(chunk_index)s, query_prompt => %(query_prompt)s,
                       passage_prompt => %(passage_prompt)s, name => %(name)s, index => %(index)s);

-- name: unwatch
select autoembed.unwatch(%s::regclass, %s);

-- name: backfill
select autoembed.backfill(%s::regclass, %s, watch => %s);

-- name: retry_failures
select autoembed.retry_failures(%s::regclass, %s);

-- name: watch_ids
select autoembed.watch_ids(%s::text[], %s);  -- strict: an entry naming no watch is an error

-- name: sweep
select autoembed.sweep();

-- name: source_progress
select st.rows, st.embedded, st.pending, st.failed
from autoembed.status st
where st.source_id = (autoembed.source_by_table(%s::regclass, %s)).id;

-- name: claim_rows
select * from autoembed.claim_rows(%s, %s, %s);

-- name: release_claims
select autoembed.release_claims(%s, %s);

-- name: failure_reasons
select f.source_id, f.error_class, count(*) as rows,
       (array_agg(f.error_message order by f.failed_at desc))[1] as latest_message
from autoembed.failures f
group by f.source_id, f.error_class
order by f.source_id, count(*) desc, f.error_class;

-- name: indexes_due
-- the watches (of a worker limited to some: theirs) whose vector index may be built now
select source_id, source, watch, may_create, how_to_build
from autoembed.indexes_due(make_interval(secs => %s), autoembed.watch_ids(%s::text[], false));

-- name: index_sources
-- the watches `autoembed index` builds for: those of one table (one of them, named), or all
select st.source_id, st.source, st.watch, st.wanted from autoembed.index_status st
where (%(table)s::regclass is null or st.source_id in (select s.id from autoembed.sources s where s.source = %(table)s::regclass))
  and (%(watch)s::text is null or st.source_id = (autoembed.source_by_table(%(table)s::regclass, %(watch)s)).id)
order by st.source_id;

-- name: index_build_settings
select set_config('maintenance_work_mem', %s, false), set_config('max_parallel_maintenance_workers', %s, false);

-- name: lock_index_build
select autoembed.lock_index_build(%s);

-- name: unlock_index_build
select autoembed.unlock_index_build(%s);

-- name: index_build_statements
select autoembed.index_build_statements(%s);

-- name: report_index_problem
select autoembed.report_index_problem(%s, %s);

-- name: index_state
select st.state from autoembed.index_status st where st.source_id = %s;
