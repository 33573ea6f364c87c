-- Loading the current content of the rows a batch names.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- The keys of `pks` that cannot be values of the source's key column, with why: a job naming "abc"
-- for a bigint key, or a uuid key that is no uuid, names no row (it is poison). One cast for the
-- whole list, then one per key only when that fails.
create or replace function autoembed.invalid_keys(src autoembed.sources, pks text[])
returns table (pk text, error text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    pk_type text := autoembed.key_type(src);
    key text;
begin
    begin
        execute format('select $1::%s[]', pk_type) using pks;
        return;
    exception when data_exception or integrity_constraint_violation then
        null;  -- some key is not of the type (or breaks a domain's check): find which
    end;
    foreach key in array pks loop
        begin
            execute format('select $1::%s', pk_type) using key;
        exception when data_exception or integrity_constraint_violation then
            pk := key;
            error := sqlerrm;
            return next;
        end;
    end loop;
end
$$;

-- Current content of the given rows; rows that no longer exist are absent. up_to_date: the stored
-- vector already embeds exactly this content (by its recorded hash: a vector with no record, e.g.
-- one left from before a re-watch, or beside NULL content, is never up to date). A row without content says why in `error`, and of
-- which kind in `error_kind`:
--   'key'    the key cannot be one of the table's (a poison job);
--   'row'    the content function raised for this row; its neighbours are unaffected (when it
--            raises for some row, the rows are evaluated one by one);
--   'source' the content cannot be evaluated at all here: a name the content function does not find
--            (it runs with search_path = pg_catalog, pg_temp, so it must qualify the tables and
--            functions it uses), a privilege its owner lacks (SQLSTATE classes 42 and 3F).
-- A dropped table, column or content function raises undefined_table, undefined_column or
-- undefined_function (autoembed.current_names, autoembed.content_expr): the source is broken.
create or replace function autoembed.load_content(source_id int, pks text[])
returns setof autoembed.loaded_row
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    registered autoembed.sources;
    src autoembed.sources;
    keys text[];  -- first the invalid ones, then the rest
    invalid text;
    query text;
    loaded autoembed.loaded_row[];
    one autoembed.loaded_row;
    key text;
begin
    select * into registered from autoembed.sources s where s.id = load_content.source_id;
    if not found then
        return;
    end if;
    src := autoembed.current_names(registered);
    query := format(
        'select t.%1$I::text, c.content, md5(c.content)::uuid,
                coalesce(t.%2$I is not null and s.content_hash = md5(c.content)::uuid, false), null::text, null::text
         from %3$s t
         cross join lateral (select %4$s as content) c
         left join autoembed.row_state s on s.source_id = $1 and s.pk = t.%1$I::text
         where t.%1$I = any($2::%5$s[])',
        src.pk_column, src.embedding_column, src.source, autoembed.content_expr(src, 't'), autoembed.key_type(src));
    for key, invalid in select * from autoembed.invalid_keys(src, pks) loop
        return next row(key, null, null, false,
                        format('%s is not a valid key of %s (its key column %I is %s): %s', quote_literal(key),
                               src.source, src.pk_column, autoembed.key_type(src), invalid), 'key')::autoembed.loaded_row;
        keys := array_append(keys, key);
    end loop;
    keys := array(select k from unnest(pks) k where k <> all(coalesce(keys, '{}'::text[])));
    begin
        execute format('select array_agg(r::autoembed.loaded_row) from (%s) r', query) into loaded using src.id, keys;
        return query select * from unnest(loaded);
        return;
    exception when others then
        -- The table, a column or the content function went away meanwhile: the source is broken
        -- (this raises). Otherwise the content function failed: evaluate the rows one by one.
        perform autoembed.content_expr(autoembed.current_names(registered), 't');
    end;
    foreach key in array keys loop
        begin
            execute query || ' limit 1' into one using src.id, array[key];
            if one.pk is not null then
                return next one;
            end if;
        exception when others then
            if left(sqlstate, 2) in ('42', '3F') then
                return next row(key, null, null, false,
                                format('%s (SQLSTATE %s); content is evaluated with search_path = pg_catalog, pg_temp: '
                                       'qualify the tables and functions the content function uses (public.tags, '
                                       'not tags), or give it its own (create function ... set search_path = public)',
                                       sqlerrm, sqlstate), 'source')::autoembed.loaded_row;
            else
                return next row(key, null, null, false, format('%s (SQLSTATE %s)', sqlerrm, sqlstate),
                                'row')::autoembed.loaded_row;
            end if;
        end;
    end loop;
end
$$;
revoke execute on function autoembed.load_content(int, text[]) from public;
grant execute on function autoembed.load_content(int, text[]) to autoembed_worker;
