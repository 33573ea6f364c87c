-- A cheaper write path. Jobs carry chunks of rows: one message {source_id, pks: [...], attempt} per
-- up to 1000 rows of a statement, instead of one message per row, so a 10,000-row INSERT writes 10
-- queue rows, not 10,000. Workers read by a row budget (autoembed.read_jobs) and split an oversized
-- message on read, so a batch still holds at most AUTOEMBED_BATCH_SIZE rows. Messages of the old
-- shape {source_id, pk} (queued before this migration) keep working everywhere. The triggers cost
-- less per statement, and an UPDATE that changes no content costs almost nothing.

-- 1. Job messages ----------------------------------------------------------------------------------

-- Queue messages live for seconds: compressing them (TOAST) costs the writer and saves nothing.
do $$
begin
    alter table pgmq.q_autoembed_jobs alter column message set storage external;
exception when insufficient_privilege then
    raise notice 'autoembed: queue messages stay compressed (%)', sqlerrm;
end
$$;

-- The rows a job message names, whichever shape it has.
create function autoembed.job_pks(message jsonb)
returns setof text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_array_elements_text(case jsonb_typeof(message -> 'pks')
                                         when 'array' then message -> 'pks'
                                         else jsonb_build_array(message -> 'pk') end)
$$;

-- How many rows a job message names (1 for the old shape and for anything malformed).
create function autoembed.job_size(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case jsonb_typeof(message -> 'pks') when 'array' then greatest(jsonb_array_length(message -> 'pks'), 1) else 1 end
$$;

-- The attempts a message says were made before it was (re)queued; 0 when absent or malformed, so a
-- bad message can never stop a read (the worker archives what it cannot parse).
create function autoembed.job_attempt(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when jsonb_typeof(message -> 'attempt') = 'number'
                then least(greatest(floor((message ->> 'attempt')::numeric), 0), 1000000)::int else 0 end
$$;

create view autoembed.jobs as
select q.msg_id,
       case when jsonb_typeof(q.message -> 'source_id') = 'number'
            then least(floor((q.message ->> 'source_id')::numeric), 2147483647)::int end as source_id,
       k.pk, autoembed.job_attempt(q.message) + q.read_ct as attempts, q.enqueued_at, q.vt as visible_at
from pgmq.q_autoembed_jobs q, autoembed.job_pks(q.message) k(pk);
comment on view autoembed.jobs is 'One line per row waiting in the job queue: its message, attempts so far and when it is next visible.';

-- Rows named by the queue's messages (the worker's queue-depth gauge and queue_status.queue_rows).
create function autoembed.queue_rows()
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
$$;

-- The one place that builds job messages: {source_id, pks, attempt} and nothing else (no table
-- names, no SQL), in chunks of at most 1000 rows; `attempt` (the attempts already made) only when
-- there were any. Written straight into the queue table with static SQL (pgmq.send_batch plans a
-- dynamic statement on every call, which doubled the cost of a one-row INSERT). `delay_seconds`
-- hides the jobs that long; a job visible now wakes workers with NOTIFY (delivered at commit).
-- Skips an empty list; returns the rows enqueued.
drop function autoembed.enqueue(int, text[]);
create function autoembed.enqueue(source_id int, pks text[], attempt int default 0, delay_seconds int default 0)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    chunk constant int := 1000;
begin
    if coalesce(cardinality(pks), 0) = 0 then
        return 0;
    end if;
    insert into pgmq.q_autoembed_jobs (vt, message)
    select clock_timestamp() + make_interval(secs => coalesce(delay_seconds, 0)),
           case when coalesce(attempt, 0) = 0
                then jsonb_build_object('source_id', enqueue.source_id, 'pks', to_jsonb(pks[i:i + chunk - 1]))
                else jsonb_build_object('source_id', enqueue.source_id, 'pks', to_jsonb(pks[i:i + chunk - 1]),
                                        'attempt', attempt) end
    from generate_series(1, cardinality(pks), chunk) i;
    if coalesce(delay_seconds, 0) <= 0 then
        perform pg_notify('autoembed', enqueue.source_id::text);
    end if;
    return cardinality(pks);
end
$$;
revoke execute on function autoembed.enqueue(int, text[], int, int) from public;
grant execute on function autoembed.enqueue(int, text[], int, int) to autoembed_worker;

-- 2. Triggers, cheaper per statement (a one-row statement pays for the statement, not the row).
-- An UPDATE that changes no row's content (the common case: counters, flags, timestamps) used to
-- diff the whole transition tables; now a row-level AFTER UPDATE trigger, filtered by PostgreSQL
-- itself (WHEN content changed: not called at all otherwise), flags the transaction, and the
-- statement trigger returns at once without the flag. AFTER, so it sees the final row, whatever
-- other BEFORE triggers changed. The flag is a transaction-local setting, so a rolled-back
-- statement or savepoint takes it back.
create function autoembed.mark_content_changed()
returns trigger
language plpgsql
-- Runs per changed row: no pinned search_path (it would cost a settings save/restore per row). It
-- is not SECURITY DEFINER and names only pg_catalog functions, so a caller's path gains nothing.
as $$
begin
    perform pg_catalog.set_config('autoembed.changed_' || tg_argv[0], 'y', true);
    return null;
end
$$;

-- An INSERT looks up only the key's current name and enters no exception block (each entry starts
-- a subtransaction). An UPDATE does its work only when flagged, and clears the flag.
create or replace function autoembed.on_write()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    source_id constant int := tg_argv[0]::int;
    changed_flag constant text := 'autoembed.changed_' || tg_argv[0];
    src autoembed.sources;
    pk_name name;
    pks text[];
begin
    if tg_op = 'INSERT' then
        select a.attname into pk_name
        from autoembed.sources s join pg_attribute a on a.attrelid = s.source and a.attnum = s.pk_attnum
        where s.id = source_id and not a.attisdropped;
        if pk_name is null then
            raise warning 'autoembed: source % is broken (its key column was dropped): insert not handled', source_id;
            return null;
        end if;
        execute format('select array_agg(n.%I::text) from autoembed_new n', pk_name) into pks;
        perform autoembed.enqueue(source_id, pks);
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if coalesce(current_setting(changed_flag, true), '') = '' then
            return null;  -- no row's content changed
        end if;
        perform set_config(changed_flag, '', true);
    end if;
    begin
        select * into src from autoembed.sources s where s.id = source_id;
        src := autoembed.current_names(src);
        if tg_op = 'UPDATE' then
            execute format(
                'select array_agg(n.%1$I::text)
                 from autoembed_new n left join autoembed_old o on o.%1$I = n.%1$I
                 where o.%1$I is null or %2$s is distinct from %3$s',
                src.pk_column, autoembed.content_expr(src, 'n'), autoembed.content_expr(src, 'o'))
            into pks;
            perform autoembed.enqueue(source_id, pks);
        else
            execute format('select array_agg(o.%I::text) from autoembed_old o', src.pk_column) into pks;
            delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(pks);
            delete from autoembed.failures f where f.source_id = src.id and f.pk = any(pks);
        end if;
    exception when undefined_column or undefined_table or undefined_function then
        raise warning 'autoembed: source % is broken (%): % not handled', source_id, sqlerrm, lower(tg_op);
    end;
    return null;
end
$$;

create or replace function autoembed.install_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    content_changed text := format('%s is distinct from %s',
                                   autoembed.content_expr(src, 'old'), autoembed.content_expr(src, 'new'));
begin
    perform autoembed.drop_triggers(src.source);
    execute format(
        'create trigger autoembed_enqueue_insert after insert on %s referencing new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_mark_changed after update on %s for each row
         when (%s) execute function autoembed.mark_content_changed(%s)', src.source, content_changed, src.id);
    execute format(
        'create trigger autoembed_enqueue_update after update on %s
         referencing old table as autoembed_old new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_forget_delete after delete on %s referencing old table as autoembed_old
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    if src.clear_on_change then
        execute format(
            'create trigger autoembed_clear_embedding before update on %s for each row
             when (%s) execute function autoembed.clear_embedding(%L)',
            src.source, content_changed, src.embedding_column);
    end if;
end
$$;

create or replace function autoembed.drop_triggers(source regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    trigger_name text;
begin
    foreach trigger_name in array array['autoembed_enqueue_insert', 'autoembed_mark_changed', 'autoembed_enqueue_update',
                                        'autoembed_forget_delete', 'autoembed_clear_embedding'] loop
        execute format('drop trigger if exists %I on %s', trigger_name, source);
    end loop;
end
$$;

-- Tables watched before this migration get the new trigger set.
do $$
declare
    src autoembed.sources;
begin
    for src in select * from autoembed.sources order by id loop
        begin
            perform autoembed.install_triggers(autoembed.current_names(src));
        exception when undefined_column or undefined_table or undefined_function then
            raise notice 'autoembed: source % (%) is broken, triggers left as they were: %', src.id, src.table_name, sqlerrm;
        end;
    end loop;
end
$$;

-- 3. Reading jobs ----------------------------------------------------------------------------------
-- pgmq.read with a row budget: hides (for vt_seconds) the oldest visible messages until they name
-- max_rows rows. A message that would overrun the budget is split in the same transaction: the
-- part that fits is read, the rest goes back as a new visible message carrying the attempts made.
-- Messages are locked one by one as they are taken (a cursor, FETCH by FETCH), never more than
-- are taken: a concurrent reader skips only those, not the whole head of the queue.
-- Returns each message as read (read_ct already counts this read), for the worker to parse.
create function autoembed.read_jobs(max_rows int, vt_seconds int)
returns table (msg_id bigint, read_ct int, message jsonb)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    visible cursor for
        select q.msg_id, autoembed.job_size(q.message) as n
        from pgmq.q_autoembed_jobs q
        where q.vt <= clock_timestamp()
        order by q.msg_id
        for update skip locked;
    job record;
    ids bigint[] := '{}';
    budget int := max_rows;
    split_id bigint;
begin
    if max_rows is null or max_rows < 1 then
        raise exception 'autoembed.read_jobs: max_rows must be at least 1, got %', max_rows;
    end if;
    if vt_seconds is null or vt_seconds < 0 then
        raise exception 'autoembed.read_jobs: vt_seconds must not be negative, got %', vt_seconds;
    end if;
    open visible;
    while budget > 0 loop
        fetch visible into job;
        exit when not found;
        ids := ids || job.msg_id;
        if job.n > budget then
            split_id := job.msg_id;
            exit;
        end if;
        budget := budget - job.n;
    end loop;
    close visible;
    if cardinality(ids) = 0 then
        return;
    end if;
    if split_id is not null then  -- keep `budget` rows, send the rest back
        insert into pgmq.q_autoembed_jobs (vt, message)
        select clock_timestamp(),
               q.message || jsonb_build_object(
                   'pks', jsonb_path_query_array(q.message -> 'pks', '$[$from to last]', jsonb_build_object('from', budget)),
                   'attempt', autoembed.job_attempt(q.message) + q.read_ct)
        from pgmq.q_autoembed_jobs q where q.msg_id = split_id;
        update pgmq.q_autoembed_jobs q
        set message = q.message || jsonb_build_object(
                'pks', jsonb_path_query_array(q.message -> 'pks', '$[0 to $to]', jsonb_build_object('to', budget - 1)))
        where q.msg_id = split_id;
    end if;
    return query
        update pgmq.q_autoembed_jobs q
        set vt = clock_timestamp() + make_interval(secs => vt_seconds), read_ct = q.read_ct + 1
        where q.msg_id = any(ids)
        returning q.msg_id, q.read_ct, q.message;
end
$$;
revoke execute on function autoembed.read_jobs(int, int) from public;
grant execute on function autoembed.read_jobs(int, int) to autoembed_worker;

-- 4. Status and sweep: pending rows are those of autoembed.jobs (both message shapes) --------------
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

create or replace view autoembed.queue_status as
select m.queue_name, m.queue_length, m.queue_visible_length, m.oldest_msg_age_sec, m.newest_msg_age_sec,
       m.total_messages, m.scrape_time,
       autoembed.queue_rows() as queue_rows
from pgmq.metrics('autoembed_jobs') m;
comment on view autoembed.queue_status is 'pgmq metrics of the autoembed job queue (lengths in messages), and the rows its messages name.';

create or replace function autoembed.sweep(max_rows int default 10000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pks text[];
    total bigint := 0;
begin
    for src in select s.* from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        begin
            src := autoembed.current_names(src);
            execute format(
                'select array(
                     select t.%1$I::text from %2$s t
                     where t.%3$I is null
                       and not exists (select from autoembed.failures f where f.source_id = $1 and f.pk = t.%1$I::text)
                       and t.%1$I::text not in (select j.pk from autoembed.jobs j where j.source_id = $1)
                     limit $2)',
                src.pk_column, src.source, src.embedding_column)
            into pks using src.id, max_rows;
            total := total + autoembed.enqueue(src.id, pks);
        exception when undefined_column or undefined_table then
            raise warning 'autoembed.sweep: source % (%) is broken: %', src.id, src.table_name, sqlerrm;
        end;
    end loop;
    delete from pgmq.a_autoembed_jobs where archived_at < now() - interval '7 days';
    return total;
end
$$;
