-- Loading the current content of the rows a batch names.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Current content of the given rows; rows that no longer exist are absent. up_to_date: the stored
-- vector already embeds exactly this content. When the content function raises for some row, the
-- rows are evaluated one by one and the failing ones carry `error` (their neighbours are unaffected).
-- A dropped table or column raises undefined_table / undefined_column: the source is broken.
create or replace function autoembed.load_content(source_id int, pks text[])
returns setof autoembed.loaded_row
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    query text;
    loaded autoembed.loaded_row[];
    one autoembed.loaded_row;
    key text;
begin
    select * into src from autoembed.sources s where s.id = load_content.source_id;
    if not found then
        return;
    end if;
    src := autoembed.current_names(src);
    pk_type := autoembed.key_type(src);
    query := format(
        'select t.%1$I::text, c.content, md5(c.content)::uuid,
                (t.%2$I is not null and s.content_hash is not distinct from md5(c.content)::uuid), null::text
         from %3$s t
         cross join lateral (select %4$s as content) c
         left join autoembed.row_state s on s.source_id = $1 and s.pk = t.%1$I::text
         where t.%1$I = any($2::%5$s[])',
        src.pk_column, src.embedding_column, src.source, autoembed.content_expr(src, 't'), pk_type);
    begin
        execute format('select array_agg(r::autoembed.loaded_row) from (%s) r', query) into loaded using src.id, pks;
        return query select * from unnest(loaded);
        return;
    exception when undefined_column or undefined_table or undefined_function then
        raise;
    when others then
        null;  -- a content function failed on some row: fall back to one row at a time
    end;
    foreach key in array pks loop
        begin
            execute query || ' limit 1' into one using src.id, array[key];
            if one.pk is not null then
                return next one;
            end if;
        exception when undefined_column or undefined_table or undefined_function then
            raise;
        when others then
            return next row(key, null, null, false, format('%s (SQLSTATE %s)', sqlerrm, sqlstate))::autoembed.loaded_row;
        end;
    end loop;
end
$$;
revoke execute on function autoembed.load_content(int, text[]) from public;
grant execute on function autoembed.load_content(int, text[]) to autoembed_worker;
