-- Reading the queue by a row budget, and claiming rows while they are embedded.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- pgmq.read with a row budget: hides (for vt_seconds) the oldest visible messages until they name
-- max_rows rows. A message that would overrun the budget is split in the same transaction: the
-- part that fits is read, the rest goes back as a new visible message carrying the attempts made
-- (a range's tail is two numbers, not the rest of a list). Messages are locked one by one as they
-- are taken (a cursor, FETCH by FETCH), never more than are taken: a concurrent reader skips only
-- those, not the whole head of the queue. Returns each message as read (read_ct already counts
-- this read), for the worker to parse. With `only_sources`, only messages of those sources are
-- read (a worker limited to some watches); the others stay as they are, unread.
create or replace function autoembed.read_jobs(max_rows int, vt_seconds int, only_sources int[] default null)
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
          and (only_sources is null or autoembed.job_source(q.message) = any (only_sources))
        order by q.msg_id
        for update skip locked;
    job record;
    ids bigint[] := '{}'::bigint[];
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
    if split_id is not null then  -- keep `budget` rows, send the rest back with the attempts made
        insert into pgmq.q_autoembed_jobs (vt, message)
        select clock_timestamp(), autoembed.job_slice(q.message, budget, null)
                                  || jsonb_build_object('attempt', autoembed.job_attempt(q.message) + q.read_ct)
        from pgmq.q_autoembed_jobs q where q.msg_id = split_id;
        update pgmq.q_autoembed_jobs q set message = autoembed.job_slice(q.message, 0, budget) where q.msg_id = split_id;
    end if;
    return query
        update pgmq.q_autoembed_jobs q
        set vt = clock_timestamp() + make_interval(secs => vt_seconds), read_ct = q.read_ct + 1
        where q.msg_id = any(ids)
        returning q.msg_id, q.read_ct, q.message;
end
$$;
revoke execute on function autoembed.read_jobs(int, int, int[]) from public;
grant execute on function autoembed.read_jobs(int, int, int[]) to autoembed_worker;

-- Make read jobs visible again at once (a stopping worker gives back the batch it prefetched).
-- Written here rather than with pgmq.set_vt: the array form of set_vt is missing from pgmq 1.4.4,
-- the version Supabase ships.
create or replace function autoembed.release_jobs(msg_ids bigint[])
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    update pgmq.q_autoembed_jobs q set vt = clock_timestamp() where q.msg_id = any(msg_ids)
$$;
revoke execute on function autoembed.release_jobs(bigint[]) from public;
grant execute on function autoembed.release_jobs(bigint[]) to autoembed_worker;

-- Rows a worker is embedding right now (autoembed.claims), so that another worker, or the same
-- worker's next batch, holding a duplicate job for a row does not embed it a second time.
-- Claim rows for `seconds`; returns the rows this call claimed (the others are claimed elsewhere).
create or replace function autoembed.claim_rows(source_id int, pks text[], seconds int)
returns setof text
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    insert into autoembed.claims as c (source_id, pk, claimed_until)
    select claim_rows.source_id, k, clock_timestamp() + make_interval(secs => seconds) from unnest(pks) k
    on conflict on constraint claims_pkey do update set claimed_until = excluded.claimed_until
    where c.claimed_until < clock_timestamp()
    returning c.pk
$$;
revoke execute on function autoembed.claim_rows(int, text[], int) from public;
grant execute on function autoembed.claim_rows(int, text[], int) to autoembed_worker;

-- Free rows once their batch is written (or given back).
create or replace function autoembed.release_claims(source_id int, pks text[])
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    delete from autoembed.claims c where c.source_id = release_claims.source_id and c.pk = any(pks)
$$;
revoke execute on function autoembed.release_claims(int, text[]) from public;
grant execute on function autoembed.release_claims(int, text[]) to autoembed_worker;
