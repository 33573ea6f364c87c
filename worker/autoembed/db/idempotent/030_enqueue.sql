-- Enqueue: the one place that writes job messages.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- The one place that builds job messages: {source_id, pks, attempt} and nothing else (no table
-- names, no SQL), in chunks of at most 1000 rows; `attempt` (the attempts already made) only when
-- there were any. Written straight into the queue table with static SQL (pgmq.send_batch plans a
-- dynamic statement on every call, which doubled the cost of a one-row INSERT). `delay_seconds`
-- hides the jobs that long; a job visible now wakes workers with NOTIFY (delivered at commit).
-- Skips an empty list; returns the rows enqueued. A generic plan, as enqueue_range (below).
create or replace function autoembed.enqueue(source_id int, pks text[], attempt int default 0, delay_seconds int default 0)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
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

-- Enqueue the keys first_pk..last_pk, in messages of at most 1000 keys (as autoembed.enqueue), and
-- wake workers (NOTIFY, delivered at commit). Called by the INSERT trigger, which runs as the owner.
-- A generic plan: with custom plans PostgreSQL re-planned the generate_series INSERT on every call,
-- a third of a one-row INSERT's trigger time (the same holds for enqueue, above).
create or replace function autoembed.enqueue_range(source_id int, first_pk bigint, last_pk bigint)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
begin
    insert into pgmq.q_autoembed_jobs (vt, message)
    select clock_timestamp(),
           jsonb_build_object('source_id', enqueue_range.source_id,
                              'pk_range', jsonb_build_array(k, least(k::numeric + 999, last_pk)))
    from generate_series(first_pk, last_pk, 1000) k;
    perform pg_notify('autoembed', enqueue_range.source_id::text);
end
$$;
revoke execute on function autoembed.enqueue_range(int, bigint, bigint) from public;
