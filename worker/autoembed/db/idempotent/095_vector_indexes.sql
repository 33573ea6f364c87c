-- Vector indexes: the index a watch wants on its embedding column (autoembed.sources.index_kind),
-- the statements that build it, and what stands in the way of searches using one.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.
--
-- Maintaining an HNSW index row by row costs the write-back most of its speed; building it once the
-- backfill is done is several times faster (bench/index_backfill.py). So a watch says which index it
-- wants and the worker builds it, CREATE INDEX CONCURRENTLY on a connection of its own (searches and
-- writes go on meanwhile), once the watch has few rows left in the queue and some rows have a vector.
-- CREATE INDEX CONCURRENTLY cannot run inside a function: autoembed.index_statement gives the
-- statements, for the worker, `autoembed index` and psql (`select autoembed.index_statement('docs') \gexec`).

-- The operator class of access method `method` (hnsw or ivfflat) for a source's embedding column
-- type (vector or halfvec) and distance: what a search by that distance can use.
create or replace function autoembed.vector_opclass(src autoembed.sources, method text)
returns oid
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select o.oid
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    join pg_opclass o on o.opcintype = a.atttypid
                     and o.opcname = t.typname || case src.distance when 'cosine' then '_cosine_ops'
                                                                    when 'l2' then '_l2_ops' else '_ip_ops' end
    join pg_am m on m.oid = o.opcmethod and m.amname = method
    where a.attrelid = src.source and a.attnum = src.embedding_attnum
$$;

-- Refuse an index kind that cannot be built on the watch's column (autoembed.watch calls this
-- before changing anything).
create or replace function autoembed.check_index_kind(source regclass, embedding_type text, dimensions int, index text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    most constant int := case embedding_type when 'halfvec' then 4000 else 2000 end;  -- pgvector's limits
begin
    if index is null or index not in ('hnsw', 'ivfflat', 'none') then
        raise exception 'autoembed.watch: unknown index %: choose hnsw, ivfflat or none', quote_nullable(index);
    end if;
    if index <> 'none' and dimensions > most then
        raise exception 'autoembed.watch: a % index holds % vectors of at most % dimensions, the column has %',
            index, embedding_type, most, dimensions
            using hint = 'Watch it with index => ''none'', or use a halfvec column (up to 4000 dimensions).';
    end if;
    if index <> 'none' and (select c.relkind from pg_class c where c.oid = source) = 'p' then
        raise exception 'autoembed.watch: % is partitioned: autoembed builds no index on a partitioned table', source
            using hint = 'Watch it with index => ''none'' and create the index on each partition (CREATE INDEX CONCURRENTLY).';
    end if;
end
$$;

-- The name of the index autoembed builds for a source: its table's and column's names, cut to fit
-- PostgreSQL's 63 bytes, and the source id (two watches never share it).
create or replace function autoembed.index_name(src autoembed.sources)
returns name
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    suffix constant text := '_ae' || src.id;
    stem text := (select c.relname || '_' || a.attname from pg_class c join pg_attribute a on a.attrelid = c.oid
                  where c.oid = src.source and a.attnum = src.embedding_attnum);
begin
    while octet_length(stem || suffix) > 63 loop
        stem := left(stem, -1);
    end loop;
    return stem || suffix;
end
$$;

-- The vector indexes (hnsw, ivfflat) on a source's embedding column alone: whether each is valid
-- (built), matches (its operator class is the one for the source's distance), and is autoembed's own.
create or replace function autoembed.vector_indexes(src autoembed.sources)
returns table (index_oid oid, index_name name, method name, opclass name, valid boolean, matches boolean, ours boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select c.oid, c.relname, m.amname, o.opcname, i.indisvalid and i.indisready,
           o.oid = autoembed.vector_opclass(src, m.amname), c.relname = autoembed.index_name(src)
    from pg_index i
    join pg_class c on c.oid = i.indexrelid
    join pg_am m on m.oid = c.relam and m.amname in ('hnsw', 'ivfflat')
    join pg_opclass o on o.oid = i.indclass[0]
    where i.indrelid = src.source and i.indnatts = 1 and i.indkey[0] = src.embedding_attnum
    order by c.relname
$$;

-- Whether the index a source wants is missing: no valid one of that method and operator class.
create or replace function autoembed.index_missing(src autoembed.sources)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select src.index_kind <> 'none'
       and not exists (select from autoembed.vector_indexes(src) i where i.valid and i.matches and i.method = src.index_kind)
$$;

-- The advisory lock a session holds while it builds a source's index (one builder across workers).
create or replace function autoembed.index_lock_key()
returns int
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select 1634033920  -- 'autoembed index', held with the source id as the second key
$$;

-- Take the build lock of a source, without waiting (session level: unlock_index_build releases it).
create or replace function autoembed.lock_index_build(source_id int)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
    select pg_try_advisory_lock(autoembed.index_lock_key(), source_id)
$$;

create or replace function autoembed.unlock_index_build(source_id int)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
    select pg_advisory_unlock(autoembed.index_lock_key(), source_id)
$$;

-- Whether another session builds a vector index on a source's column now: it holds the source's
-- build lock, or pg_stat_progress_create_index shows it (to roles that may see that session).
create or replace function autoembed.index_build_running(src autoembed.sources)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select exists (select from pg_locks l
                   where l.locktype = 'advisory' and l.granted and l.pid <> pg_backend_pid()
                     and l.database = (select d.oid from pg_database d where d.datname = current_database())
                     and l.classid = autoembed.index_lock_key()::oid and l.objid = src.id::oid and l.objsubid = 2)
        or exists (select from pg_stat_progress_create_index p
                   where p.pid <> pg_backend_pid() and p.relid = src.source
                     and (p.index_relid = 0 or p.index_relid in (select i.index_oid from autoembed.vector_indexes(src) i)))
$$;

-- The rows of a source waiting in the queue, visible or not, counted over at most 1,001 of its
-- messages (each names one row or more): enough to tell whether more than 1,000 are, without
-- reading a queue of many single-row jobs whole on every look.
create or replace function autoembed.index_backlog(src autoembed.sources)
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(sum(autoembed.job_size(m.message)), 0)::bigint
    from (select q.message from pgmq.q_autoembed_jobs q where autoembed.job_source(q.message) = src.id limit 1001) m
$$;

-- Why a source's index is not to be built yet (NULL: it may be): more than 1,000 of its rows are
-- queued (the backfill is not done), or none of its rows has a vector (an empty index would be
-- maintained row by row through the coming load; an IVFFlat index would learn no lists).
create or replace function autoembed.index_waits_for(src autoembed.sources)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    backlog constant bigint := autoembed.index_backlog(src);
    has_vectors boolean;
begin
    if backlog > 1000 then
        return 'more than 1,000 rows queued';
    end if;
    execute format('select exists (select from %s t where t.%I is not null)', src.source,
                   (autoembed.current_names(src)).embedding_column)
    into has_vectors;
    return case when not has_vectors then 'no row has a vector yet' end;
end
$$;

-- The statements that build the index a source wants, to run one by one outside any transaction:
-- none when no index is wanted, a valid one of that method and operator class is there, or another
-- session builds it; else DROP INDEX CONCURRENTLY of autoembed's own index where one is left that
-- is invalid (a build that did not finish) or no longer what the watch wants, then CREATE INDEX
-- CONCURRENTLY. An IVFFlat index gets rows/1000 lists (sqrt(rows) beyond a million rows), at least 1.
create or replace function autoembed.index_build_statements(source_id int)
returns setof text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    index_name name;
    vector_rows bigint;
    options text := '';
begin
    select * into src from autoembed.sources s where s.id = index_build_statements.source_id;
    if not found or not autoembed.index_missing(src) or autoembed.index_build_running(src) then
        return;
    end if;
    src := autoembed.current_names(src);
    index_name := autoembed.index_name(src);
    if exists (select from autoembed.vector_indexes(src) i where i.ours) then
        return next format('drop index concurrently if exists %I.%I',
                           (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = src.source),
                           index_name);
    end if;
    if src.index_kind = 'ivfflat' then
        execute format('select count(*) from %s t where t.%I is not null', src.source, src.embedding_column) into vector_rows;
        options := format(' with (lists = %s)',
                          greatest(1, case when vector_rows <= 1000000 then vector_rows / 1000 else floor(sqrt(vector_rows)) end));
    end if;
    return next format('create index concurrently if not exists %I on %s using %s (%I %s)%s', index_name, src.source,
                       src.index_kind, src.embedding_column,
                       (select format('%I.%I', n.nspname, o.opcname) from pg_opclass o
                        join pg_namespace n on n.oid = o.opcnamespace where o.oid = autoembed.vector_opclass(src, src.index_kind)),
                       options);
end
$$;

create or replace function autoembed.index_statement(source regclass, watch text default null)
returns setof text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select autoembed.index_build_statements((autoembed.source_by_table(index_statement.source, index_statement.watch)).id)
$$;
comment on function autoembed.index_statement is 'The statements that build the vector index a table''s watch wants (none when it is there), to run outside a transaction: in psql, select autoembed.index_statement(''docs'') \gexec';

-- How to build a source's index now: the command and the psql line.
create or replace function autoembed.index_how_to_build(src autoembed.sources)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select format('`autoembed index %s --watch %s`, or in psql select autoembed.index_statement(%L, %L) \gexec',
                  src.source::regclass, src.name, src.source::regclass::text, src.name)
$$;

-- A source's vector index as a search sees it: the kind wanted, the index found on the column (the
-- wanted one when it is there, else any usable one, else autoembed's own, else one of another
-- operator class) and a state: 'ready: ...', 'building: ...', 'cannot build: ...' (the worker's
-- report, until the watch is changed), 'mismatch: ...' (no index the searches can use, but one of
-- another distance: queries scan the table), 'invalid: ...', 'none wanted', 'waiting for the
-- backfill: ...' or 'to build: ...'. `warning`: the state needs someone to act.
create or replace function autoembed.index_state(src autoembed.sources, out wanted text, out index_name name,
                                                 out index_method name, out index_opclass name, out index_valid boolean,
                                                 out state text, out warning boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    found record;
    waits_for text;
begin
    wanted := src.index_kind;
    warning := false;
    select * into found from autoembed.vector_indexes(src) i
    order by (i.valid and i.matches and i.method = src.index_kind) desc, (i.valid and i.matches) desc, i.ours desc,
             i.valid desc, i.index_name
    limit 1;
    index_name := found.index_name;
    index_method := found.method;
    index_opclass := found.opclass;
    index_valid := found.valid;
    if found.valid and found.matches and (found.method = src.index_kind or src.index_kind = 'none') then
        state := format('ready: %I (%s, %s)', found.index_name, found.method, found.opclass);
    elsif src.index_kind <> 'none' and autoembed.index_build_running(src) then
        state := format('building: %I', autoembed.index_name(src));
    elsif src.index_kind <> 'none' and src.index_problem is not null and src.index_problem_at >= src.updated_at then
        state := 'cannot build: ' || src.index_problem;
        warning := true;
    elsif found.valid and not found.matches then
        state := format('mismatch: index %I uses %s, but this watch searches by %s: queries cannot use it and scan the table',
                        found.index_name, found.opclass, src.distance);
        warning := true;
    elsif found.index_name is not null and not found.valid then
        state := format('invalid: index %I is left from a build that did not finish: %s', found.index_name,
                        case when found.ours and src.index_kind <> 'none' then 'autoembed drops it and builds it again'
                             else format('drop it (drop index concurrently %I)', found.index_name) end);
        warning := not (found.ours and src.index_kind <> 'none');
    elsif src.index_kind = 'none' then
        state := 'none wanted';
    else
        waits_for := autoembed.index_waits_for(src);
        state := coalesce('waiting for the backfill: ' || waits_for,
                          format('to build: the worker builds %I next (now: %s)', autoembed.index_name(src),
                                 autoembed.index_how_to_build(src)));
    end if;
end
$$;

-- Per watch, its vector index (autoembed.index_state).
create or replace function autoembed.index_states()
returns table (source_id int, source text, watch text, wanted text, index_name name, index_method name,
               index_opclass name, index_valid boolean, state text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    found record;
begin
    for src in select s.* from autoembed.sources s join pg_class c on c.oid = s.source order by s.id loop
        begin
            src := autoembed.current_names(src);
        exception when undefined_column or undefined_table then
            continue;
        end;
        found := autoembed.index_state(src);
        source_id := src.id;
        source := src.source::regclass::text;
        watch := src.name;
        wanted := found.wanted;
        index_name := found.index_name;
        index_method := found.index_method;
        index_opclass := found.index_opclass;
        index_valid := found.index_valid;
        state := found.state;
        return next;
    end loop;
end
$$;

create or replace view autoembed.index_status as select * from autoembed.index_states();
comment on view autoembed.index_status is 'Per watch: the vector index it wants, the index found on its embedding column (name, method, operator class, valid) and its state.';

-- The watches (of `watch_ids`; NULL: all) whose wanted index may be built now: missing, not being
-- built, the backfill done, and no problem reported since the watch last changed, or none within
-- `retry_after`. `may_create`: the current role owns the table (CREATE INDEX needs that);
-- `how_to_build`: what its owner runs instead.
create or replace function autoembed.indexes_due(retry_after interval, watch_ids int[] default null)
returns table (source_id int, source text, watch text, may_create boolean, how_to_build text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    for src in
        select s.* from autoembed.sources s
        join pg_attribute a on a.attrelid = s.source and a.attnum = s.embedding_attnum and not a.attisdropped
        where s.index_kind <> 'none' and (indexes_due.watch_ids is null or s.id = any (indexes_due.watch_ids))
          and (s.index_problem is null or s.index_problem_at < s.updated_at or s.index_problem_at < now() - retry_after)
        order by s.id
    loop
        continue when not autoembed.index_missing(src) or autoembed.index_build_running(src);
        source_id := src.id;
        source := src.source::regclass::text;
        watch := src.name;
        may_create := pg_has_role(current_user, (select c.relowner from pg_class c where c.oid = src.source), 'usage');
        how_to_build := autoembed.index_how_to_build(src);
        -- a role that may not build it learns so at once (it need not read the table)
        continue when case when may_create then autoembed.index_waits_for(src) is not null  -- the backlog, then vectors
                           else autoembed.index_backlog(src) > 1000 end;
        return next;
    end loop;
end
$$;
grant execute on function autoembed.indexes_due(interval, int[]) to autoembed_worker;
grant execute on function autoembed.index_build_statements(int) to autoembed_worker;
grant execute on function autoembed.lock_index_build(int) to autoembed_worker;
grant execute on function autoembed.unlock_index_build(int) to autoembed_worker;

-- What kept the worker from building a source's index (NULL: it is built), shown by
-- autoembed.status until the watch is changed.
create or replace function autoembed.report_index_problem(source_id int, problem text)
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    update autoembed.sources s set index_problem = left(report_index_problem.problem, 2000), index_problem_at = now()
    where s.id = report_index_problem.source_id
      and (s.index_problem is distinct from report_index_problem.problem or report_index_problem.problem is not null)
$$;
revoke execute on function autoembed.report_index_problem(int, text) from public;
grant execute on function autoembed.report_index_problem(int, text) to autoembed_worker;
