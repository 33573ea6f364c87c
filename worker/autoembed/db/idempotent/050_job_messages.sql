-- Job messages: the rows a message names, whichever shape it has.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Three shapes, all read everywhere: {source_id, pk_range: [first, last]} (an INSERT of consecutive
-- integer keys, at most 1000 a message), {source_id, pks: [...]} (any other statement, at most 1000),
-- and {source_id, pk} (queued by 0.1). `attempt` is present once a row was retried.

-- {first, last} of a well-formed pk_range (integers, first <= last, within bigint), else null.
create or replace function autoembed.job_range(message jsonb)
returns bigint[]
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when message @? 'strict $.pk_range ? (@.size() == 2 && @[0].floor() == @[0] && @[1].floor() == @[1]
                                                      && @[0] <= @[1] && @[0] >= -9223372036854775808
                                                      && @[1] <= 9223372036854775807)'
                then array[(message #>> '{pk_range,0}')::numeric::bigint, (message #>> '{pk_range,1}')::numeric::bigint] end
$$;

-- The rows a job message names, whichever shape it has.
create or replace function autoembed.job_pks(message jsonb)
returns setof text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select k.pk
    from (select autoembed.job_range(message) as r) m,
         lateral (select g::text from generate_series(m.r[1], m.r[2]) g  -- no rows when r is null
                  union all
                  select jsonb_array_elements_text(case jsonb_typeof(message -> 'pks')
                                                       when 'array' then message -> 'pks'
                                                       else jsonb_build_array(message -> 'pk') end)
                  where m.r is null) k(pk)
$$;

-- How many rows a job message names (1 for the old shape and for anything malformed).
create or replace function autoembed.job_size(message jsonb)
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select case when m.r is not null then least(m.r[2]::numeric - m.r[1] + 1, 2147483647)::int
                when jsonb_typeof(message -> 'pks') = 'array' then greatest(jsonb_array_length(message -> 'pks'), 1)
                else 1 end
    from (select autoembed.job_range(message) as r) m
$$;

-- The message cut down to the rows from position `skip` (0-based), at most `take` of them (null: all).
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
select q.msg_id,
       case when jsonb_typeof(q.message -> 'source_id') = 'number'
            then least(floor((q.message ->> 'source_id')::numeric), 2147483647)::int end as source_id,
       k.pk, autoembed.job_attempt(q.message) + q.read_ct as attempts, q.enqueued_at, q.vt as visible_at
from pgmq.q_autoembed_jobs q, autoembed.job_pks(q.message) k(pk);
comment on view autoembed.jobs is 'One line per row waiting in the job queue: its message, attempts so far and when it is next visible.';

-- Rows named by the queue's messages (the worker's queue-depth gauge and queue_status.queue_rows).
create or replace function autoembed.queue_rows()
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
$$;
