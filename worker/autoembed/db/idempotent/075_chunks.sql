-- Chunk tables: where a chunked watch keeps its rows' chunks and their vectors, made and kept
-- in step with the watched table by autoembed.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.
--
-- autoembed.chunks_<source id> holds, per chunk: the row's key (parent_pk, of the key's type),
-- the md5 of the chunk's text and which of equal texts in the row it is (occurrence: 0, 1, ...),
-- its position among the row's chunks, its character offsets in the row's content, the text and
-- its vector (of the embedding column's type). A chunk is known by (parent_pk, chunk_hash,
-- occurrence), its primary key, which is also the index on the parent key: an edit elsewhere in
-- the row only moves an unchanged chunk (position and offsets), so it keeps its vector and is not
-- embedded again. The worker replaces a row's chunks in the statement that writes
-- its own vector, guarded by the row's content hash (db/idempotent/085_write_chunks.sql).
--
-- A deleted row takes its chunks along by triggers, not by a foreign key: a foreign key to the
-- watched table would make TRUNCATE and DROP TABLE of it fail. The writer locks the rows it
-- writes chunks for (FOR KEY SHARE), so a DELETE waits for it and then deletes what it wrote.
-- Search joins the watched table anyway, so a chunk of a row that is gone is never returned.
--
-- The chunk table has row level security: a role reads a chunk only where it may read the row
-- (autoembed.parent_visible runs as that role, so the watched table's own RLS decides). Its
-- owner (who watched the table) and the worker's functions are not subject to it.

-- Whether the caller can see the row with key `key` in table `parent` (by oid, so that the policy
-- that calls this records no dependency on the table: DROP TABLE of it must keep working). Runs
-- as the caller: the table's privileges and row level security apply.
create or replace function autoembed.parent_visible(parent oid, key_attnum smallint, key anyelement)
returns boolean
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    visible boolean;
begin
    execute format('select exists (select from %s t where t.%I = $1)', parent::regclass,
                   (select a.attname from pg_attribute a where a.attrelid = parent and a.attnum = key_attnum))
    into visible using key;
    return visible;
end
$$;

-- Refuse chunking options that cannot work (autoembed.watch calls this before changing anything).
create or replace function autoembed.check_chunk_options(chunks boolean, chunk_tokens int, chunk_overlap int, chunk_index text)
returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
    if chunk_tokens is not null and chunk_tokens < 16 then
        raise exception 'autoembed.watch: chunk_tokens must be at least 16, got %', chunk_tokens;
    end if;
    if chunk_overlap is not null and (chunk_overlap < 0 or chunk_overlap >= coalesce(chunk_tokens, 512) / 2) then
        raise exception 'autoembed.watch: chunk_overlap must be from 0 to less than half of chunk_tokens (%), got %',
            coalesce(chunk_tokens, 512), chunk_overlap;
    end if;
    if chunk_index is null or chunk_index not in ('hnsw', 'none') then
        raise exception 'autoembed.watch: unknown chunk_index %: choose hnsw or none', quote_nullable(chunk_index);
    end if;
    if not coalesce(chunks, false) and (chunk_tokens is not null or chunk_overlap is not null) then
        raise exception 'autoembed.watch: chunk_tokens and chunk_overlap need chunks => true';
    end if;
end
$$;

-- Delete the chunks of rows that are gone: AFTER DELETE (the statement's old rows), AFTER TRUNCATE,
-- and per row AFTER an UPDATE that changed its key (the old key's chunks are nobody's now).
-- SECURITY DEFINER: whoever may write the watched table, without rights on the chunk table.
create or replace function autoembed.forget_chunks()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    chunks regclass;
begin
    select * into src from autoembed.sources s where s.id = tg_argv[0]::int;
    chunks := (select c.oid from pg_class c where c.oid = src.chunk_table);
    if chunks is null then
        return null;
    end if;
    if tg_op = 'TRUNCATE' then
        execute format('truncate %s', chunks);
    elsif tg_level = 'ROW' then
        execute format('delete from %s c where c.parent_pk = $1::%s', chunks, autoembed.key_type(src))
        using to_jsonb(old) ->> (autoembed.current_names(src)).pk_column;
    else
        execute format('delete from %s c using autoembed_old o where c.parent_pk = o.%I', chunks,
                       (autoembed.current_names(src)).pk_column);
    end if;
    return null;
end
$$;

-- Drop a source's chunk triggers (autoembed.source_triggers: those of its id, whatever their names);
-- those of the table's other watches stay.
create or replace function autoembed.drop_chunk_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    installed record;
begin
    for installed in select * from autoembed.source_triggers(src, array['forget_chunks']) loop
        execute format('drop trigger %I on %s', installed.trigger_name, installed.rel);
    end loop;
end
$$;

-- Drop a source's chunk table and its triggers (unwatch, or a watch without chunks).
create or replace function autoembed.drop_chunks(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    chunks regclass := (select c.oid from pg_class c where c.oid = src.chunk_table);
begin
    if exists (select from pg_class c where c.oid = src.source) then
        perform autoembed.drop_chunk_triggers(src);
    end if;
    if chunks is not null then
        execute format('drop table %s', chunks);
    end if;
    update autoembed.sources s set chunk_table = null where s.id = src.id and s.chunk_table is not null;
end
$$;

-- Make, keep or drop a source's chunk table as `chunks` asks (autoembed.watch calls this after
-- writing the registration, `previous` being the one it replaced, if any), with its vector index
-- (`chunk_index`: hnsw or none) and the triggers that delete chunks of rows that are gone. A table
-- whose key or vector type no longer matches is made again; one whose vectors another model or
-- passage prompt made is emptied. Returns the registration as it is now.
create or replace function autoembed.setup_chunks(src autoembed.sources, previous autoembed.sources, chunks boolean,
                                                   chunk_index text)
returns autoembed.sources
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    table_name constant name := 'chunks_' || src.id;
    index_name constant name := 'chunks_' || src.id || '_embedding_idx';
    key_type constant text := autoembed.key_type(src);
    vector_type constant text := (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
                                  where a.attrelid = src.source and a.attnum = src.embedding_attnum);
    opclass constant oid := autoembed.vector_opclass(src, 'hnsw');  -- 095_vector_indexes.sql
    chunk_rel regclass := to_regclass(format('autoembed.%I', table_name));
    src_now autoembed.sources;
begin
    if not coalesce(chunks, false) then
        perform autoembed.drop_chunks(src);
        select * into src_now from autoembed.sources s where s.id = src.id;
        return src_now;
    end if;
    if chunk_rel is not null and (
           (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
            where a.attrelid = chunk_rel and a.attname = 'parent_pk') is distinct from key_type
        or (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
            where a.attrelid = chunk_rel and a.attname = 'embedding') is distinct from vector_type) then
        execute format('drop table %s', chunk_rel);
        chunk_rel := null;
    end if;
    if chunk_rel is null then
        execute format(
            'create table autoembed.%I (
                 parent_pk %s not null,
                 chunk_hash uuid not null,
                 occurrence int not null default 0,
                 position int not null,
                 start_char int not null,
                 end_char int not null,
                 chunk text not null,
                 embedding %s not null,
                 primary key (parent_pk, chunk_hash, occurrence)
             )', table_name, key_type, vector_type);
        chunk_rel := format('autoembed.%I', table_name)::regclass;
        execute format('comment on table %s is %L', chunk_rel,
                       format('Chunks of %s and their vectors, kept by autoembed (do not write to it).', src.source));
        execute format('alter table %s enable row level security', chunk_rel);
        execute format('grant select on %s to autoembed_search', chunk_rel);
    elsif previous.id is not null
          and (previous.embedder, previous.model, previous.passage_prompt) is distinct from (src.embedder, src.model, src.passage_prompt) then
        execute format('truncate %s', chunk_rel);
    end if;
    -- the policy names the key column by number: made again on every watch
    execute format('drop policy if exists chunks_of_visible_rows on %s', chunk_rel);
    execute format('create policy chunks_of_visible_rows on %s for select using (autoembed.parent_visible(%s, %s::smallint, parent_pk))',
                   chunk_rel, src.source::oid, src.pk_attnum);
    if chunk_index = 'hnsw' and not exists (
            select from pg_index i join pg_class c on c.oid = i.indexrelid
            where i.indrelid = chunk_rel and c.relname = index_name
              and i.indclass[0] = opclass) then
        execute format('drop index if exists autoembed.%I', index_name);
        execute format('create index %I on %s using hnsw (embedding %s)', index_name, chunk_rel,
                       (select format('%I.%I', n.nspname, o.opcname) from pg_opclass o
                        join pg_namespace n on n.oid = o.opcnamespace where o.oid = opclass));
    elsif chunk_index = 'none' then
        execute format('drop index if exists autoembed.%I', index_name);
    end if;
    perform autoembed.drop_chunk_triggers(src);
    execute format(
        'create trigger %I after delete on %s referencing old table as autoembed_old
         for each statement execute function autoembed.forget_chunks(%s)', 'autoembed_chunks_delete_' || src.id, src.source, src.id);
    execute format(
        'create trigger %I after truncate on %s for each statement
         execute function autoembed.forget_chunks(%s)', 'autoembed_chunks_truncate_' || src.id, src.source, src.id);
    execute format(
        'create trigger %1$I after update on %2$s for each row
         when (old.%3$I is distinct from new.%3$I) execute function autoembed.forget_chunks(%4$s)',
        'autoembed_chunks_key_' || src.id, src.source, src.pk_column, src.id);
    update autoembed.sources s set chunk_table = chunk_rel where s.id = src.id returning * into src_now;
    return src_now;
end
$$;

-- A chunked watch's chunks, in order (the chunk table's name need not be known); `watch` names it
-- where the table has several. Runs as the
-- caller: a role sees only the chunks of rows it may read.
create or replace function autoembed.chunks_of(source regclass, watch text default null)
returns table (pk text, chunk_position int, start_char int, end_char int, chunk text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.source_by_table(source, watch);
begin
    if src.chunk_table is null then
        raise exception 'autoembed.chunks_of: the watch % of % is not watched with chunks', quote_literal(src.name), source
            using hint = 'Watch it with chunks => true.';
    end if;
    return query execute format(
        'select c.parent_pk::text, c.position, c.start_char, c.end_char, c.chunk from %s c order by c.parent_pk, c.position',
        src.chunk_table);
end
$$;
comment on function autoembed.chunks_of is 'The chunks of a chunked watch''s rows, in order, with their offsets in the row''s content. Respects RLS.';
grant execute on function autoembed.chunks_of(regclass, text) to autoembed_search;
