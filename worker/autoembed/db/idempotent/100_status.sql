-- Status: per-source progress, the queue, optional capabilities.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Per source (a watch: a table watched twice has two), its table and the watch's name: rows, embedded, pending rows (those of autoembed.jobs), failures, rows that are none
-- of these (unaccounted: missing an embedding with neither a job nor a failure record; the sweep
-- re-enqueues them), and a state: 'ok' only while every row is accounted for and nothing is wrong;
-- otherwise 'table dropped', 'broken: ...' (a column or the content function is gone, or the worker
-- reported that it cannot serve the source: a model that does not load or has another dimension,
-- content that cannot be read), 'embedder unavailable: ...' (the worker keeps the rows queued and
-- probes), or the count of unaccounted rows. A problem the worker reported counts until a write
-- succeeds or the source is watched again. `index`: the state of its vector index
-- (autoembed.index_state); one that needs someone to act (a mismatch: searches scan the table; the
-- worker may not build it) is the state too, where nothing else is wrong.
create or replace function autoembed.source_status()
returns table (source_id int, source text, watch text, state text, index text, embedder text, model text, rows bigint,
               embedded bigint, pending bigint, failed bigint, unaccounted bigint, oldest_pending_age interval,
               last_success_at timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    reported text;
    vector_index record;
begin
    for src in select * from autoembed.sources order by id loop
        source_id := src.id;
        watch := src.name;
        embedder := src.embedder;
        model := src.model;
        last_success_at := src.last_success_at;
        reported := case when src.problem_at >= src.updated_at then src.problem end;
        select count(distinct j.pk), now() - min(j.enqueued_at) into pending, oldest_pending_age
        from autoembed.jobs j where j.source_id = src.id;
        select count(*) into failed from autoembed.failures f where f.source_id = src.id;
        rows := null;
        embedded := null;
        unaccounted := null;
        index := null;
        source := src.table_name;
        begin
            src := autoembed.current_names(src);
            perform autoembed.content_expr(src, 't');
            source := src.source::text;
            execute format(
                'select count(*), count(t.%1$I), count(*) filter (where t.%1$I is null and f.pk is null and j.pk is null)
                 from %2$s t
                 left join autoembed.failures f on f.source_id = $1 and f.pk = t.%3$I::text
                 left join (select distinct jobs.pk from autoembed.jobs where jobs.source_id = $1) j on j.pk = t.%3$I::text',
                src.embedding_column, src.source, src.pk_column)
            into rows, embedded, unaccounted using src.id;
            vector_index := autoembed.index_state(src);
            index := vector_index.state;
            state := case when reported is not null then reported
                          when unaccounted > 0 then format('%s rows unaccounted for (no embedding, job or failure): '
                                                           'autoembed.sweep() re-enqueues them', unaccounted)
                          when vector_index.warning then 'index ' || vector_index.state
                          else 'ok' end;
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
comment on view autoembed.status is 'Per watch of a table (its name in `watch`): its state, its vector index''s state, rows, embedded, pending jobs, failures, unaccounted rows, oldest pending age, last success.';

-- The visible length is counted here: pgmq.metrics() has it only from pgmq 1.5 (Supabase ships 1.4.4).
create or replace view autoembed.queue_status as
select m.queue_name, m.queue_length,
       (select count(*) from pgmq.q_autoembed_jobs q where q.vt <= clock_timestamp()) as queue_visible_length,
       m.oldest_msg_age_sec, m.newest_msg_age_sec, m.total_messages, m.scrape_time,
       autoembed.queue_rows() as queue_rows
from pgmq.metrics('autoembed_jobs') m;
comment on view autoembed.queue_status is 'pgmq metrics of the autoembed job queue (lengths in messages), and the rows its messages name.';

-- The database a background worker of pg_cron or pg_net serves: each connects to one database
-- (cron.database_name, pg_net.database_name) and stays connected. Read from pg_stat_activity, which
-- any role may read: cron.database_name itself is readable only with pg_read_all_settings. Another
-- role's session shows no backend_type without pg_read_all_stats, so its application_name is
-- taken then, from superuser sessions only (the workers run as the bootstrap superuser).
create or replace function autoembed.background_worker_database(worker_type text, worker_name text)
returns name
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select a.datname from pg_stat_activity a
    where a.datname is not null
      and (a.backend_type like worker_type
           or (a.backend_type is null and a.application_name like worker_name
               and exists (select from pg_roles r where r.oid = a.usesysid and r.rolsuper)))
    limit 1
$$;

-- Whether pg_cron runs this database's jobs: the extension is here and its scheduler serves it.
create or replace function autoembed.pg_cron_runs_here()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select exists (select from pg_extension where extname = 'pg_cron')
       and autoembed.background_worker_database('pg_cron launcher', 'pg_cron scheduler') = current_database()
$$;

-- Whether pg_net sends the requests queued in this database: the extension is here and its worker
-- serves it. Elsewhere net.http_post queues requests that are never sent.
create or replace function autoembed.pg_net_sends_here()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select exists (select from pg_extension where extname = 'pg_net')
       and autoembed.background_worker_database('pg\_net%', 'pg\_net %') = current_database()
$$;

-- Per optional capability: is it there, working in this database, and what does its absence cost.
create or replace function autoembed.capabilities()
returns table (feature text, available boolean, detail text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    cron_version text := (select extversion from pg_extension where extname = 'pg_cron');
    net_version text := (select extversion from pg_extension where extname = 'pg_net');
    cron_db name := autoembed.background_worker_database('pg_cron launcher', 'pg_cron scheduler');
    net_db name := autoembed.background_worker_database('pg\_net%', 'pg\_net %');
    no_sweep constant text := 'the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler';
    no_push constant text := 'the database cannot wake an HTTP worker by itself (autoembed.schedule_drain_requests); run `autoembed worker`';
    sweep_job boolean := false;
    missing text;
begin
    feature := 'vector'; available := true;
    detail := 'pgvector ' || (select extversion from pg_extension where extname = 'vector') || ' in schema ' ||
              (select extnamespace::regnamespace::text from pg_extension where extname = 'vector');
    return next;

    feature := 'pgmq'; available := true;
    detail := coalesce('pgmq extension ' || (select extversion from pg_extension where extname = 'pgmq'),
                       'pgmq SQL-only install (no extension)');
    return next;

    feature := 'pg_cron'; available := autoembed.pg_cron_runs_here();
    if available then
        if has_table_privilege('cron.job', 'select') then
            execute 'select exists (select from cron.job where jobname = ''autoembed-sweep'')' into sweep_job;
        end if;
        detail := format('pg_cron %s: sweep job %s', cron_version, case when sweep_job then 'scheduled' else 'not scheduled' end);
    elsif cron_version is not null then
        detail := format('pg_cron %s is installed here, but its scheduler runs the jobs of %s: %s', cron_version,
                         coalesce('database ' || quote_ident(cron_db), 'no database (it is not in shared_preload_libraries)'), no_sweep);
    elsif exists (select from pg_available_extensions where name = 'pg_cron') then
        detail := format('available but not enabled in this database%s: %s',
                         coalesce(' (its scheduler runs in database ' || quote_ident(cron_db) || ')', ''), no_sweep);
    else
        detail := 'not installed: ' || no_sweep;
    end if;
    return next;

    feature := 'pg_net'; available := autoembed.pg_net_sends_here();
    if available then
        detail := format('pg_net %s: its worker sends the requests of this database', net_version);
    elsif net_version is not null then
        detail := format('pg_net %s is installed here, but its worker sends the requests of %s (pg_net.database_name), '
                         'so requests queued here are never sent: %s', net_version,
                         coalesce('database ' || quote_ident(net_db), 'no database (it is not in shared_preload_libraries)'), no_push);
    else
        detail := 'not installed: ' || no_push;
    end if;
    return next;

    feature := 'vault'; available := autoembed.vault_available();
    detail := case when available then 'Supabase Vault: drain tokens are kept there'
                   else 'no Supabase Vault: drain tokens are kept in autoembed.drain_targets, readable by its owner only' end;
    return next;

    feature := 'privileges';
    select string_agg(format('%s (as %I)', m.statement, m.run_as), '; ') into missing from autoembed.missing_grants() m;
    available := missing is null;
    detail := coalesce('autoembed''s roles lack: ' || missing, 'autoembed_worker and autoembed_search hold what they need');
    return next;
end
$$;
comment on function autoembed.capabilities is 'Which optional capabilities work in this database, and what is missing without them.';
