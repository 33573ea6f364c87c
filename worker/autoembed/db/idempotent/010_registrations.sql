-- Registrations: a source's names as they are now, its content expression, look-up by table.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- The registration with its column names as they are now (looked up by attnum, so a renamed
-- column keeps working). A dropped table or column raises undefined_table / undefined_column.
create or replace function autoembed.current_names(src autoembed.sources)
returns autoembed.sources
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    table_exists boolean;
    names name[];  -- of the key, the content column and the vector column, NULL where there is none
begin
    select exists (select from pg_class c where c.oid = src.source),
           array(select a.attname
                 from unnest(array[src.pk_attnum, src.content_attnum, src.embedding_attnum]) with ordinality k(attnum, i)
                 left join pg_attribute a on a.attrelid = src.source and a.attnum = k.attnum and not a.attisdropped
                 order by k.i)
    into table_exists, names;
    if not table_exists then
        raise exception 'autoembed: the table of source % (%) was dropped', src.id, src.table_name
            using errcode = 'undefined_table', hint = 'Remove the registration with autoembed.sweep() or re-watch a new table.';
    end if;
    if names[1] is null or names[3] is null or (src.content_attnum is not null and names[2] is null) then
        raise exception 'autoembed: a column of source % (%) was dropped', src.id, src.table_name
            using errcode = 'undefined_column', hint = 'Re-run autoembed.watch() with the columns the table has now.';
    end if;
    src.pk_column := names[1];
    src.content_column := coalesce(names[2], src.content_column);
    src.embedding_column := names[3];
    return src;
end
$$;

-- The SQL expression for a source's content, evaluated on the row alias `alias`.
create or replace function autoembed.content_expr(src autoembed.sources, alias text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
    if src.content_column is not null then
        return format('%I.%I::text', alias, src.content_column);
    end if;
    return autoembed.content_call(src, format('%I.*', alias));
end
$$;

-- A call of a source's content function on `arg` (an SQL expression: a row of the source table).
-- A content function is registered by name (schema.name) and found by that name and the table's
-- row type.
create or replace function autoembed.content_call(src autoembed.sources, arg text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    parts text[];
    expr text;
begin
    parts := parse_ident(src.content_function);
    select format('%I.%I(%s)', n.nspname, p.proname, arg) into expr
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = parts[1] and p.proname = parts[2] and p.pronargs = 1
      and p.proargtypes[0] = (select c.reltype from pg_class c where c.oid = src.source);
    if expr is null then
        raise exception 'autoembed: the content function % of source % (%) was dropped or renamed',
            src.content_function, src.id, src.table_name
            using errcode = 'undefined_function', hint = 'Re-run autoembed.watch() with the content function as it is now.';
    end if;
    return expr;
end
$$;

-- A table's watch: the one named `watch`, or with no name the table's only watch. A table watched
-- several times needs the name (the error lists them).
create or replace function autoembed.source_by_table(source regclass, watch text default null)
returns autoembed.sources
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    names text;
    how_many int;
begin
    if source is null then
        raise exception 'autoembed: source table must not be NULL';
    end if;
    select count(*), string_agg(quote_literal(s.name), ', ' order by s.name) into how_many, names
    from autoembed.sources s where s.source = source_by_table.source;
    if how_many = 0 then
        raise exception 'autoembed: table % is not watched', source
            using hint = 'Register it with autoembed.watch(...).';
    end if;
    if source_by_table.watch is not null then
        select * into src from autoembed.sources s where s.source = source_by_table.source and s.name = source_by_table.watch;
        if not found then
            raise exception 'autoembed: table % has no watch named %: its watches are %', source,
                quote_literal(source_by_table.watch), names;
        end if;
    elsif how_many > 1 then
        raise exception 'autoembed: table % has % watches (%): say which one', source, how_many, names
            using hint = 'Pass watch => ''<name>'' (CLI: --watch NAME).';
    else
        select * into src from autoembed.sources s where s.source = source_by_table.source;
    end if;
    return src;
end
$$;

-- The source ids of `watches`, each 'table' (all its watches) or 'table.name' (one of them), the
-- table optionally schema-qualified ('schema.table.name'; 'a.b' is table a's watch b when there is
-- one, else every watch of table a.b). With `strict`, an entry that names no watch is an error;
-- without, it is left out (a worker limited to watches one of which was unwatched since). NULL
-- watches: NULL (no limit). An unqualified table is looked up in public (as autoembed.watch
-- names it); a table of another schema is given with it.
create or replace function autoembed.watch_ids(watches text[], strict boolean default true)
returns int[]
language plpgsql stable
set search_path = pg_catalog, public, pg_temp
as $$
declare
    entry text;
    parts text[];
    found_ids int[];
    ids int[] := '{}';
begin
    if watches is null then
        return null;
    end if;
    foreach entry in array watches loop
        begin
            parts := parse_ident(entry);
        exception when others then
            parts := null;
        end;
        found_ids := null;
        if cardinality(parts) between 2 and 3 then  -- table.name
            found_ids := array(select s.id from autoembed.sources s
                               where s.source = to_regclass(array_to_string(array(select quote_ident(p) from unnest(parts[1:cardinality(parts) - 1]) p), '.'))
                                 and s.name = parts[cardinality(parts)]);
        end if;
        if cardinality(parts) between 1 and 2 and coalesce(cardinality(found_ids), 0) = 0 then  -- table
            found_ids := array(select s.id from autoembed.sources s
                               where s.source = to_regclass(array_to_string(array(select quote_ident(p) from unnest(parts) p), '.'))
                               order by s.id);
        end if;
        if coalesce(cardinality(found_ids), 0) = 0 and strict then
            raise exception 'autoembed: % names no watch: give table or table.name of a watched table (autoembed.status lists them)',
                quote_literal(entry);
        end if;
        ids := ids || coalesce(found_ids, '{}');
    end loop;
    return ids;
end
$$;

-- The SQL type of a source's key column, to cast its text keys with (`= any($1::<type>[])`).
create or replace function autoembed.key_type(src autoembed.sources)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select format_type(a.atttypid, a.atttypmod) from pg_attribute a
    where a.attrelid = src.source and a.attnum = src.pk_attnum
$$;
