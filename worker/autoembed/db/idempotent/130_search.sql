-- Search: nearest rows to a query vector, and for a chunked watch each row's best chunk.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- The k rows nearest to a query vector by the source's distance. For a chunked watch, rows are
-- ranked by their nearest chunk, which comes with its text and position; with chunks_per_row > 1
-- a row may come back with up to that many of its chunks (the k nearest chunks, at most
-- chunks_per_row of a row: passages for a reader or a language model). `content` is the row's
-- content either way. Runs as the caller, so privileges and RLS of the watched table apply (and
-- the chunk table's, which shows a role only the chunks of rows it may read). A row whose vector
-- is cleared (its content changed and is not embedded yet) is not returned. `watch` names the
-- watch to search where the table has several.
--
-- Chunks are read through the chunk table's vector index where it has one: the nearest
-- candidates first, more (4x each round) until k rows are found or no chunk is left. Each round
-- searches the index with hnsw.ef_search at twice its candidates (at least pgvector's default 40,
-- at most its maximum 1000). pgvector 0.8's iterative index scans let a round go past ef_search;
-- before 0.8 a round is capped at 1000 candidates.
create or replace function autoembed.search(source regclass, query vector, k int default 5, chunks_per_row int default 1,
                                            watch text default null)
returns table (pk text, content text, distance double precision, chunk text, chunk_position int)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.current_names(autoembed.source_by_table(source, watch));
    col_type text;
    op text;
    candidates int;
    found_rows int;
    results autoembed.search_hit[];
    saved_ef_search text;
    saved_iterative text;
begin
    if query is null then
        raise exception 'autoembed.search: query vector must not be NULL';
    end if;
    if cardinality(query::real[]) <> src.dimensions then
        raise exception 'autoembed.search: query has % dimensions, %.% holds %', cardinality(query::real[]),
            src.table_name, src.embedding_column, src.dimensions;
    end if;
    if k is null or k < 1 then
        raise exception 'autoembed.search: k must be at least 1';
    end if;
    if chunks_per_row is null or chunks_per_row < 1 then
        raise exception 'autoembed.search: chunks_per_row must be at least 1';
    end if;
    select format_type(a.atttypid, a.atttypmod),
           format('operator(%I.%s)', n.nspname,
                  case src.distance when 'cosine' then '<=>' when 'l2' then '<->' else '<#>' end)
    into col_type, op
    from pg_attribute a join pg_type t on t.oid = a.atttypid join pg_namespace n on n.oid = t.typnamespace
    where a.attrelid = src.source and a.attnum = src.embedding_attnum;
    if src.chunk_table is null then
        return query execute format(
            'select t.%1$I::text, %2$s, (t.%3$I %4$s $1::%5$s)::float8, null::text, null::int
             from %6$s t where t.%3$I is not null order by t.%3$I %4$s $1::%5$s limit $2',
            src.pk_column, autoembed.content_expr(src, 't'), src.embedding_column, op, col_type, src.source)
        using query, k;
        return;
    end if;

    saved_ef_search := current_setting('hnsw.ef_search', true);
    saved_iterative := current_setting('hnsw.iterative_scan', true);
    if saved_iterative is not null then
        perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
    end if;
    candidates := greatest(4 * k, 40);
    loop
        perform set_config('hnsw.ef_search', least(greatest(2 * candidates, 40), 1000)::text, true);
        execute format(
            'with nearest as (
                 select c.parent_pk, c.chunk, c.position, (c.embedding %1$s $1::%2$s)::float8 as distance
                 from %3$s c order by c.embedding %1$s $1::%2$s limit $3
             ), best as (
                 select n.* from (select n.*, row_number() over (partition by n.parent_pk
                                                                 order by n.distance, n.position) as rank
                                  from nearest n) n
                 where n.rank <= $4
             )
             select array(
                 select row(t.%4$I::text, %5$s, b.distance, b.chunk, b.position)::autoembed.search_hit
                 from best b join %6$s t on t.%4$I = b.parent_pk
                 where t.%7$I is not null
                 order by b.distance, b.parent_pk, b.position limit $2),
                 (select count(*) from nearest)::int',
            op, col_type, src.chunk_table, src.pk_column, autoembed.content_expr(src, 't'), src.source,
            src.embedding_column)
        into results, found_rows using query, k, candidates, chunks_per_row;
        exit when cardinality(results) >= k or found_rows < candidates;
        candidates := candidates * 4;
    end loop;
    perform set_config('hnsw.ef_search', coalesce(saved_ef_search, '40'), true);
    if saved_iterative is not null then
        perform set_config('hnsw.iterative_scan', saved_iterative, true);
    end if;
    return query select r.* from unnest(results) r;
end
$$;
comment on function autoembed.search is 'The k rows nearest to a query vector by the table''s distance; for a chunked watch each with its nearest chunk (or up to chunks_per_row of them). Respects RLS.';
grant execute on function autoembed.search(regclass, vector, int, int, text) to autoembed_search;

-- What a client that embeds its own query needs to know: the prompt to put before it, and the
-- model and dimension to embed it with.
create or replace function autoembed.search_settings(source regclass, watch text default null)
returns table (embedder text, model text, dimensions int, query_prompt text, chunked boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select s.embedder, s.model, s.dimensions, s.query_prompt, s.chunk_table is not null
    from autoembed.source_by_table(search_settings.source, search_settings.watch) s
$$;
comment on function autoembed.search_settings is 'How to embed a query for autoembed.search on this table: embedder, model, dimensions and the query prompt.';
grant execute on function autoembed.search_settings(regclass, text) to autoembed_search;
