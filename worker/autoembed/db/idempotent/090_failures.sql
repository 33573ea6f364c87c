-- Failure records.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Record rows that could not be embedded, unless their content changed meanwhile (a newer job
-- then owns the row). Where the source is broken the guard cannot run: record them anyway. A key
-- that cannot be one of the table's names no row and is never recorded. Returns the rows recorded.
create or replace function autoembed.record_failures(source_id int, pks text[], hashes uuid[], error_classes text[],
                                          error_messages text[], attempts int[])
returns table (pk text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    keys text[];
    current_rows autoembed.loaded_row[];
begin
    select * into src from autoembed.sources s where s.id = record_failures.source_id;
    if not found then
        return;
    end if;
    begin
        -- FOR KEY SHARE, as in write_embeddings: a failure is recorded only for a row that keeps its
        -- key until this transaction ends (a DELETE committed meanwhile left its record behind).
        src := autoembed.current_names(src);
        pk_type := autoembed.key_type(src);
        keys := array(select k from unnest(pks) k
                      where k not in (select i.pk from autoembed.invalid_keys(src, pks) i));
        execute format('select count(*) from (select from %1$s t where t.%2$I = any($1::%3$s[]) for key share of t) l',
                       src.source, src.pk_column, pk_type)
        using keys;
        current_rows := array(select l from autoembed.load_content(record_failures.source_id, keys) l);
    exception when undefined_column or undefined_table or undefined_function then
        current_rows := array(select row(b.pk, null, b.hash, false, null, null)::autoembed.loaded_row
                              from unnest(pks, hashes) b(pk, hash));
    end;
    return query
    with batch as (
        select * from unnest(pks, hashes, error_classes, error_messages, attempts) b(pk, hash, cls, msg, tries)
    )
    insert into autoembed.failures as f (source_id, pk, content_hash, error_class, error_message, attempts)
    select record_failures.source_id, b.pk, b.hash, b.cls, left(b.msg, 2000), b.tries
    from batch b join unnest(current_rows) c on c.pk = b.pk and c.content_hash is not distinct from b.hash
    on conflict on constraint failures_pkey do update
    set content_hash = excluded.content_hash, error_class = excluded.error_class,
        error_message = excluded.error_message, attempts = excluded.attempts, failed_at = now()
    returning f.pk;
end
$$;
revoke execute on function autoembed.record_failures(int, text[], uuid[], text[], text[], int[]) from public;
grant execute on function autoembed.record_failures(int, text[], uuid[], text[], text[], int[]) to autoembed_worker;

-- What the worker found wrong with a source (NULL: nothing), shown by autoembed.status as its state
-- until a write to it succeeds (autoembed.write_embeddings clears it) or it is watched again.
create or replace function autoembed.report_problem(source_id int, problem text)
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    update autoembed.sources s set problem = left(report_problem.problem, 2000), problem_at = now()
    where s.id = report_problem.source_id and s.problem is distinct from left(report_problem.problem, 2000)
$$;
revoke execute on function autoembed.report_problem(int, text) from public;
grant execute on function autoembed.report_problem(int, text) to autoembed_worker;
