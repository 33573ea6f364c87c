-- Search: nearest rows to a query vector.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Nearest rows to a query vector by the source's distance; runs as the caller, so RLS applies.
create or replace function autoembed.search(source regclass, query vector, k int default 5)
returns table (pk text, content text, distance double precision)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.current_names(autoembed.source_by_table(source));
    col_type text;
    op text;
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
    select format_type(a.atttypid, a.atttypmod),
           format('operator(%I.%s)', n.nspname,
                  case src.distance when 'cosine' then '<=>' when 'l2' then '<->' else '<#>' end)
    into col_type, op
    from pg_attribute a join pg_type t on t.oid = a.atttypid join pg_namespace n on n.oid = t.typnamespace
    where a.attrelid = src.source and a.attnum = src.embedding_attnum;
    return query execute format(
        'select t.%1$I::text, %2$s, (t.%3$I %4$s $1::%5$s)::float8
         from %6$s t where t.%3$I is not null order by t.%3$I %4$s $1::%5$s limit $2',
        src.pk_column, autoembed.content_expr(src, 't'), src.embedding_column, op, col_type, src.source)
    using query, k;
end
$$;
comment on function autoembed.search is 'The k rows nearest to a query vector, by the table''s distance. Respects RLS.';
grant execute on function autoembed.search(regclass, vector, int) to autoembed_search;
