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
    col smallint;
    current name;
begin
    if not exists (select from pg_class where oid = src.source) then
        raise exception 'autoembed: the table of source % (%) was dropped', src.id, src.table_name
            using errcode = 'undefined_table', hint = 'Remove the registration with autoembed.sweep() or re-watch a new table.';
    end if;
    foreach col in array array[src.pk_attnum, src.content_attnum, src.embedding_attnum] loop
        continue when col is null;
        select a.attname into current from pg_attribute a
        where a.attrelid = src.source and a.attnum = col and not a.attisdropped;
        if current is null then
            raise exception 'autoembed: a column of source % (%) was dropped', src.id, src.table_name
                using errcode = 'undefined_column', hint = 'Re-run autoembed.watch() with the columns the table has now.';
        end if;
        if col = src.pk_attnum then src.pk_column := current; end if;
        if col = src.content_attnum then src.content_column := current; end if;
        if col = src.embedding_attnum then src.embedding_column := current; end if;
    end loop;
    return src;
end
$$;

-- The SQL expression for a source's content, evaluated on the row alias `alias`.
create or replace function autoembed.content_expr(src autoembed.sources, alias text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    expr text;
begin
    if src.content_column is not null then
        return format('%I.%I::text', alias, src.content_column);
    end if;
    select format('%I.%I(%I.*)', n.nspname, p.proname, alias) into expr
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where p.oid = src.content_function;
    if expr is null then
        raise exception 'autoembed: the content function of source % (%) was dropped', src.id, src.table_name
            using errcode = 'undefined_function';
    end if;
    return expr;
end
$$;

create or replace function autoembed.source_by_table(source regclass)
returns autoembed.sources
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    if source is null then
        raise exception 'autoembed: source table must not be NULL';
    end if;
    select * into src from autoembed.sources s where s.source = source_by_table.source;
    if not found then
        raise exception 'autoembed: table % is not watched', source
            using hint = 'Register it with autoembed.watch(...).';
    end if;
    return src;
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
