-- The SQL API for watching: watch, unwatch, backfill, retry_failures.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Resolve `content`: a column of `source`, or a function taking a `source` row and returning text.
-- Runs with the caller's search_path (no pinned path) so that an unqualified function name
-- resolves as the caller sees it, like the regclass argument; every other name is qualified.
create or replace function autoembed.resolve_content(source regclass, content text, out content_column name, out content_function regprocedure)
language plpgsql stable
as $$
declare
    parts text[];
    row_type oid := (select reltype from pg_class where oid = source);
begin
    if content is null or btrim(content) = '' then
        raise exception 'autoembed.watch: content must name a column of % or a function of its rows', source;
    end if;
    select a.attname into content_column from pg_attribute a
    where a.attrelid = source and a.attname = content and a.attnum > 0 and not a.attisdropped;
    if found then
        return;
    end if;
    begin
        parts := parse_ident(content);
    exception when others then
        parts := null;
    end;
    if parts is not null and array_length(parts, 1) <= 2 then
        select p.oid::regprocedure into content_function
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proname = parts[array_length(parts, 1)]
          and (case when array_length(parts, 1) = 2 then n.nspname = parts[1] else pg_function_is_visible(p.oid) end)
          and p.pronargs = 1 and p.proargtypes[0] = row_type and p.prokind = 'f';
        if found then
            if (select prorettype from pg_proc where oid = content_function) not in ('text'::regtype, 'varchar'::regtype) then
                raise exception 'autoembed.watch: content function % must return text', content_function;
            end if;
            return;
        end if;
    end if;
    raise exception 'autoembed.watch: % is neither a column of % nor a function taking a % row and returning text',
        quote_literal(content), source, source;
end
$$;

-- The embedder kinds a worker can build: autoembed.embedders.registry.KINDS, held equal by a test.
create or replace function autoembed.embedder_kinds()
returns text[]
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select array['local', 'openai', 'hashing']
$$;

create or replace function autoembed.watch(
    source regclass,
    content text,
    embedding_column name default 'embedding',
    embedder text default 'local',
    model text default 'sentence-transformers/all-MiniLM-L6-v2',
    distance text default 'cosine',
    max_attempts int default 5,
    clear_on_change boolean default true,
    backfill boolean default true
)
returns int
language plpgsql  -- caller's search_path: see resolve_content
as $$
declare
    rel pg_class;
    pk_cols name[];
    pk_attnums smallint[];
    emb pg_attribute;
    emb_type text;
    resolved record;
    previous autoembed.sources;
    src autoembed.sources;
begin
    if source is null then
        raise exception 'autoembed.watch: source table must not be NULL';
    end if;
    select * into rel from pg_class where oid = source;
    if rel.relkind not in ('r', 'p') then
        raise exception 'autoembed.watch: % is not a table', source;
    end if;

    select array_agg(a.attname order by k.ord), array_agg(a.attnum order by k.ord) into pk_cols, pk_attnums
    from pg_index i
    cross join unnest(i.indkey) with ordinality k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = source and i.indisprimary;
    if pk_cols is null then
        raise exception 'autoembed.watch: table % has no primary key', source
            using hint = 'autoembed identifies rows by a single-column primary key (bigint, uuid, text, ...).';
    elsif array_length(pk_cols, 1) > 1 then
        raise exception 'autoembed.watch: table % has a composite primary key (%), which is not supported',
            source, array_to_string(pk_cols, ', ')
            using hint = 'Add a single-column key (for example a bigint identity) and make it the primary key.';
    end if;

    if embedding_column is null then
        raise exception 'autoembed.watch: embedding_column must not be NULL';
    end if;
    select * into emb from pg_attribute a
    where a.attrelid = source and a.attname = embedding_column and a.attnum > 0 and not a.attisdropped;
    if not found then
        raise exception 'autoembed.watch: table % has no column %', source, quote_ident(embedding_column);
    end if;
    select t.typname into emb_type from pg_type t
    join pg_depend d on d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'vector'
    where t.oid = emb.atttypid and t.typname in ('vector', 'halfvec');
    if emb_type is null then
        raise exception 'autoembed.watch: column %.% is %, not a vector or halfvec column', source,
            quote_ident(embedding_column), format_type(emb.atttypid, emb.atttypmod);
    end if;
    if emb.atttypmod <= 0 then
        raise exception 'autoembed.watch: column %.% must have a fixed dimension, e.g. %(384)', source,
            quote_ident(embedding_column), emb_type;
    end if;

    resolved := autoembed.resolve_content(source, content);
    if resolved.content_column = embedding_column then
        raise exception 'autoembed.watch: the content and the embedding cannot be the same column';
    end if;
    if embedder is null or embedder <> all (autoembed.embedder_kinds()) then
        raise exception 'autoembed.watch: unknown embedder %: choose %', quote_nullable(embedder),
            array_to_string(autoembed.embedder_kinds(), ', ');
    end if;
    if model is null or btrim(model) = '' then
        raise exception 'autoembed.watch: model must name a model';
    end if;
    if distance is null or distance not in ('cosine', 'l2', 'inner_product') then
        raise exception 'autoembed.watch: unknown distance %: choose cosine, l2 or inner_product', quote_nullable(distance);
    end if;
    if max_attempts is null or max_attempts < 1 then
        raise exception 'autoembed.watch: max_attempts must be at least 1, got %', coalesce(max_attempts::text, 'NULL');
    end if;

    select * into previous from autoembed.sources s where s.source = watch.source for update;  -- see write_embeddings
    insert into autoembed.sources as s (source, table_name, pk_column, content_column, content_function,
                                        embedding_column, pk_attnum, content_attnum, embedding_attnum,
                                        dimensions, embedder, model, distance, max_attempts, clear_on_change)
    values (source, source::text, pk_cols[1], resolved.content_column, resolved.content_function,
            embedding_column, pk_attnums[1],
            (select a.attnum from pg_attribute a where a.attrelid = source and a.attname = resolved.content_column),
            emb.attnum, emb.atttypmod, embedder, model, distance, max_attempts, coalesce(clear_on_change, true))
    on conflict on constraint sources_source_key do update
    set table_name = excluded.table_name, pk_column = excluded.pk_column,
        content_column = excluded.content_column, content_function = excluded.content_function,
        embedding_column = excluded.embedding_column, pk_attnum = excluded.pk_attnum,
        content_attnum = excluded.content_attnum, embedding_attnum = excluded.embedding_attnum,
        dimensions = excluded.dimensions,
        embedder = excluded.embedder, model = excluded.model, distance = excluded.distance,
        max_attempts = excluded.max_attempts, clear_on_change = excluded.clear_on_change,
        updated_at = now()
    returning * into src;

    perform autoembed.install_triggers(src);

    -- A different content, column or model makes every stored vector stale: forget their hashes.
    if previous.id is not null and (previous.content_column, previous.content_function, previous.embedding_column,
                                    previous.embedder, previous.model)
        is distinct from (src.content_column, src.content_function, src.embedding_column, src.embedder, src.model) then
        delete from autoembed.row_state where source_id = src.id;
        if coalesce(backfill, true) then
            perform autoembed.backfill(source, only_missing => false);
        end if;
    elsif coalesce(backfill, true) then
        perform autoembed.backfill(source, only_missing => true);
    end if;
    return src.id;
end
$$;
comment on function autoembed.watch is 'Watch a table: every insert or content change enqueues an embedding job.';

create or replace function autoembed.unwatch(source regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.source_by_table(source);
begin
    perform autoembed.drop_triggers(src.source);
    delete from pgmq.q_autoembed_jobs where message ->> 'source_id' = src.id::text;
    delete from autoembed.sources where id = src.id;
end
$$;
comment on function autoembed.unwatch is 'Stop watching a table; stored vectors stay, pending jobs are dropped.';

-- Enqueue rows in chunks (keyset over the primary key), so memory stays flat on any table size.
create or replace function autoembed.backfill(source regclass, only_missing boolean default true, chunk_size int default 10000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.current_names(autoembed.source_by_table(source));
    pk_type text := autoembed.key_type(src);
    keys text[];
    last_key text;
    total bigint := 0;
begin
    if chunk_size is null or chunk_size < 1 then
        raise exception 'autoembed.backfill: chunk_size must be at least 1';
    end if;
    loop
        execute format(
            'select array_agg(k::text order by k) from (
                 select t.%1$I as k from %2$s t
                 where ($1::text is null or t.%1$I > $1::%3$s) %4$s
                 order by t.%1$I limit $2) chunk',
            src.pk_column, src.source, pk_type,
            case when coalesce(only_missing, true) then format('and t.%I is null', src.embedding_column) else '' end)
        into keys using last_key, chunk_size;
        exit when keys is null;
        total := total + autoembed.enqueue(src.id, keys);
        last_key := keys[array_length(keys, 1)];
    end loop;
    return total;
end
$$;
comment on function autoembed.backfill is 'Enqueue existing rows (by default only those without an embedding).';

create or replace function autoembed.retry_failures(source regclass default null)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    only_source int := case when source is null then null else (autoembed.source_by_table(source)).id end;
    retried bigint;
begin
    with gone as (
        delete from autoembed.failures f
        where only_source is null or f.source_id = only_source
        returning f.source_id, f.pk
    )
    select coalesce(sum(autoembed.enqueue(g.source_id, g.pks)), 0) into retried
    from (select gone.source_id, array_agg(gone.pk) as pks from gone group by gone.source_id) g;
    return retried;
end
$$;
comment on function autoembed.retry_failures is 'Re-enqueue failed rows (of one table, or all) and clear their failure records.';
