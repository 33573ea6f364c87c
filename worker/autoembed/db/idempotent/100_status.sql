-- Status: per-source progress, the queue, optional capabilities.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Per source: rows, embedded, pending rows (those of autoembed.jobs), failures, and a state.
create or replace function autoembed.source_status()
returns table (source_id int, source text, state text, embedder text, model text, rows bigint,
               embedded bigint, pending bigint, failed bigint, oldest_pending_age interval,
               last_success_at timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    for src in select * from autoembed.sources order by id loop
        source_id := src.id;
        embedder := src.embedder;
        model := src.model;
        last_success_at := src.last_success_at;
        select count(distinct j.pk), now() - min(j.enqueued_at) into pending, oldest_pending_age
        from autoembed.jobs j where j.source_id = src.id;
        select count(*) into failed from autoembed.failures f where f.source_id = src.id;
        rows := null;
        embedded := null;
        source := src.table_name;
        begin
            src := autoembed.current_names(src);
            perform autoembed.content_expr(src, 't');
            source := src.source::text;
            state := 'ok';
            execute format('select count(*), count(%I) from %s', src.embedding_column, src.source)
            into rows, embedded;
        exception
            when undefined_table then
                state := 'table dropped';
            when undefined_column or undefined_function then
                source := src.source::text;
                state := 'broken: ' || sqlerrm;
        end;
        return next;
    end loop;
end
$$;

create or replace view autoembed.status as select * from autoembed.source_status();
comment on view autoembed.status is 'Per watched table: rows, embedded, pending jobs, failures, oldest pending age, last success.';

-- The visible length is counted here: pgmq.metrics() has it only from pgmq 1.5 (Supabase ships 1.4.4).
create or replace view autoembed.queue_status as
select m.queue_name, m.queue_length,
       (select count(*) from pgmq.q_autoembed_jobs q where q.vt <= clock_timestamp()) as queue_visible_length,
       m.oldest_msg_age_sec, m.newest_msg_age_sec, m.total_messages, m.scrape_time,
       autoembed.queue_rows() as queue_rows
from pgmq.metrics('autoembed_jobs') m;
comment on view autoembed.queue_status is 'pgmq metrics of the autoembed job queue (lengths in messages), and the rows its messages name.';

create or replace function autoembed.capabilities()
returns table (feature text, available boolean, detail text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select 'vector', true, 'pgvector ' || (select extversion from pg_extension where extname = 'vector')
    union all
    select 'pgmq', true, coalesce('pgmq extension ' || (select extversion from pg_extension where extname = 'pgmq'),
                                  'pgmq SQL-only install (no extension)')
    union all
    select 'pg_cron', e.extversion is not null,
           case when e.extversion is not null then 'pg_cron ' || e.extversion || ': sweep job ' ||
                    case when exists (select from pg_namespace where nspname = 'cron')
                         then 'scheduled' else 'not scheduled' end
                when exists (select from pg_available_extensions where name = 'pg_cron')
                    then 'available but not enabled in this database (cron.database_name = ' ||
                         coalesce(current_setting('cron.database_name', true), 'postgres') ||
                         '): the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler'
                else 'not installed: the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler' end
    from (select (select extversion from pg_extension where extname = 'pg_cron') as extversion) e
    union all
    select 'pg_net', e.extversion is not null,
           case when e.extversion is not null then 'pg_net ' || e.extversion
                else 'not installed: the database cannot wake an HTTP worker by itself (autoembed.schedule_drain_requests); run `autoembed worker`' end
    from (select (select extversion from pg_extension where extname = 'pg_net') as extversion) e
$$;
comment on function autoembed.capabilities is 'Which optional extensions are present, and what is missing without them.';
