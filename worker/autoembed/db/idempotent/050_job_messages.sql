-- Job messages: the rows a message names, whichever shape it has.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Three shapes, all read everywhere: {source_id, pk_range: [first, last]} (an INSERT of consecutive
-- integer keys, at most 1000 a message), {source_id, pks: [...]} (any other statement, at most 1000),
-- and {source_id, pk} (queued by 0.1). `attempt` is present once a row was retried.

-- A job message is well formed when it is one autoembed writes: a JSON object whose source_id is an
-- integer from 1 to 2147483647, whose `attempt`, where present, is an integer from 0 to 1000000,
-- and that names 1 to 1000 rows: a pk_range of two integers within bigint, first <= last, at most
-- 999 apart; or a pks list of strings; or one pk string. No key is longer than 2000 bytes (a longer
-- one could not be claimed: autoembed.claims indexes it). An integer is written as one (1, not 1.0
-- or 1e0). Anything else is malformed: it names no rows here, counts as one row of a read's budget
-- (it is never split), and the worker archives it, saying why (autoembed/jobs.py applies the same
-- rules, with the reasons). CASE, not AND, orders the checks: PostgreSQL may evaluate the operands
-- of an inlined AND in any order, and a cast must never meet a value it cannot take.

-- Whether a JSON value is an integer from low to high.
create or replace function autoembed.job_integer(value jsonb, low numeric, high numeric)
returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when jsonb_typeof(value) is distinct from 'number' then false
                when value #>> '{}' !~ '^-?[0-9]{1,20}$' then false
                else (value #>> '{}')::numeric between low and high end
$$;

-- {first, last} of a well-formed pk_range, else null.
create or replace function autoembed.job_range(message jsonb)
returns bigint[]
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when jsonb_typeof(message -> 'pk_range') is distinct from 'array' then null
                when jsonb_array_length(message -> 'pk_range') <> 2 then null
                when not autoembed.job_integer(message -> 'pk_range' -> 0, -9223372036854775808, 9223372036854775807)
                  or not autoembed.job_integer(message -> 'pk_range' -> 1, -9223372036854775808, 9223372036854775807)
                    then null
                when (message #>> '{pk_range,1}')::numeric - (message #>> '{pk_range,0}')::numeric not between 0 and 999
                    then null
                else array[(message #>> '{pk_range,0}')::bigint, (message #>> '{pk_range,1}')::bigint] end
$$;

-- The source a job message names; null when it names none that can exist.
create or replace function autoembed.job_source(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when jsonb_typeof(message) is distinct from 'object' then null
                when autoembed.job_integer(message -> 'source_id', 1, 2147483647) then (message ->> 'source_id')::int end
$$;

-- Whether a job message is well formed (above).
create or replace function autoembed.job_is_valid(message jsonb)
returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when autoembed.job_source(message) is null then false
                when message ? 'attempt' and not autoembed.job_integer(message -> 'attempt', 0, 1000000) then false
                when message ? 'pk_range' then autoembed.job_range(message) is not null
                when message ? 'pks' then
                    case when jsonb_typeof(message -> 'pks') <> 'array' then false
                         when jsonb_array_length(message -> 'pks') not between 1 and 1000 then false
                         else (select bool_and(case when jsonb_typeof(k) <> 'string' then false
                                                    else octet_length(k #>> '{}') <= 2000 end)
                               from jsonb_array_elements(message -> 'pks') k) end
                when message ? 'pk' then
                    case when jsonb_typeof(message -> 'pk') <> 'string' then false
                         else octet_length(message ->> 'pk') <= 2000 end
                else false end
$$;

-- The rows a job message names, whichever shape it has (none when it is malformed).
create or replace function autoembed.job_pks(message jsonb)
returns setof text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select k.pk
    from (select autoembed.job_is_valid(message) as valid, autoembed.job_range(message) as r) m,
         lateral (select g::text from generate_series(m.r[1], m.r[2]) g  -- no rows when r is null
                  where m.valid
                  union all
                  select jsonb_array_elements_text(case jsonb_typeof(message -> 'pks')
                                                       when 'array' then message -> 'pks'
                                                       else jsonb_build_array(message -> 'pk') end)
                  where m.valid and m.r is null) k(pk)
$$;

-- How many rows a job message names (1 for the old shape and for anything malformed).
create or replace function autoembed.job_size(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when not autoembed.job_is_valid(message) then 1
                when m.r is not null then (m.r[2] - m.r[1] + 1)::int
                when jsonb_typeof(message -> 'pks') = 'array' then jsonb_array_length(message -> 'pks')
                else 1 end
    from (select autoembed.job_range(message) as r) m
$$;

-- A well-formed message cut down to the rows from position `skip` (0-based), at most `take` of them
-- (null: all).
create or replace function autoembed.job_slice(message jsonb, skip int, take int)
returns jsonb
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when m.r is not null
                then message || jsonb_build_object('pk_range', jsonb_build_array(
                         m.r[1]::numeric + skip, least(m.r[2]::numeric, m.r[1]::numeric + skip + take - 1)))
                else message || jsonb_build_object('pks', jsonb_path_query_array(
                         message -> 'pks', '$[$from to $to]',
                         jsonb_build_object('from', skip, 'to', coalesce(skip::bigint + take - 1, 2147483647))))
           end
    from (select autoembed.job_range(message) as r) m
$$;

-- The attempts a message says were made before it was (re)queued; 0 when absent or malformed, so a
-- bad message can never stop a read (the worker archives what it cannot parse).
create or replace function autoembed.job_attempt(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when jsonb_typeof(message -> 'attempt') = 'number'
                then least(greatest(floor((message ->> 'attempt')::numeric), 0), 1000000)::int else 0 end
$$;

create or replace view autoembed.jobs as
select q.msg_id, autoembed.job_source(q.message) as source_id, k.pk, autoembed.job_attempt(q.message) + q.read_ct as attempts, q.enqueued_at, q.vt as visible_at
from pgmq.q_autoembed_jobs q, autoembed.job_pks(q.message) k(pk);
comment on view autoembed.jobs is 'One line per row waiting in the job queue: its message, attempts so far and when it is next visible.';

-- Rows named by the queue's messages but those of the sources `excluding` (a draining worker is done
-- once only the rows of sources it cannot serve are left).
create or replace function autoembed.queue_rows(excluding int[])
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
    where autoembed.job_source(q.message) is null or autoembed.job_source(q.message) <> all(excluding)
$$;

-- Rows named by the queue's messages (the worker's queue-depth gauge and queue_status.queue_rows).
create or replace function autoembed.queue_rows()
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select autoembed.queue_rows('{}'::int[])
$$;
