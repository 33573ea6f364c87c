-- The SQL API for watching: watch, unwatch, backfill, retry_failures.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Resolve `content`: a column of `source`, or a function taking a `source` row and returning text.
-- A function name may be schema-qualified; an unqualified one is looked up in the table's schema,
-- then in public, whatever the caller's search_path. Like watch, it pins a path that has public
-- after pg_catalog only so that messages name a table of public as its users do; every name in
-- here is qualified or pg_catalog's.
create or replace function autoembed.resolve_content(source regclass, content text, out content_column name, out content_function text)
language plpgsql stable
set search_path = pg_catalog, public, pg_temp
as $$
declare
    parts text[];
    schemas text[];
    row_type oid := (select reltype from pg_class where oid = source);
    fn regprocedure;
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
        schemas := case when array_length(parts, 1) = 2 then array[parts[1]]
                        else array[(select n.nspname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                                    where c.oid = source), 'public'] end;
        select p.oid::regprocedure, format('%I.%I', n.nspname, p.proname) into fn, content_function
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proname = parts[array_length(parts, 1)] and n.nspname = any (schemas)
          and p.pronargs = 1 and p.proargtypes[0] = row_type and p.prokind = 'f'
        order by array_position(schemas, n.nspname::text)
        limit 1;
        if found then
            if (select prorettype from pg_proc where oid = fn) not in ('text'::regtype, 'varchar'::regtype) then
                raise exception 'autoembed.watch: content function % must return text', fn;
            end if;
            return;
        end if;
    end if;
    raise exception 'autoembed.watch: % is neither a column of % nor a function taking a % row and returning text',
        quote_literal(content), source, source
        using hint = 'An unqualified function name is looked up in the table''s schema, then in public; name it as schema.function otherwise.';
end
$$;

-- The embedder kinds a worker can build: autoembed.embedders.registry.KINDS, held equal by a test.
create or replace function autoembed.embedder_kinds()
returns text[]
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select array['local', 'openai', 'e5', 'hashing']
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
    backfill boolean default true,
    chunks boolean default false,      -- split content into chunks (autoembed.chunks_<id>, see 075_chunks.sql)
    chunk_tokens int default null,     -- most tokens of a chunk; NULL: the model's window, at most 512
    chunk_overlap int default null,    -- tokens a chunk repeats of the text before it; NULL: the default
    chunk_index text default 'hnsw',   -- the chunk vectors' index: hnsw or none
    query_prompt text default null,    -- before search queries; NULL: the model family's (025_prompts.sql)
    passage_prompt text default null,  -- before row content or chunks; NULL: the model family's
    name text default null,            -- the watch's name, unique per table; NULL: the embedding column's
    index text default 'none'          -- the vector index the worker builds after the backfill: hnsw, ivfflat or none
)
returns int
language plpgsql
set search_path = pg_catalog, public, pg_temp  -- see resolve_content
as $$
declare
    rel pg_class;
    pk_cols name[];
    pk_attnums smallint[];
    emb pg_attribute;
    emb_type text;
    resolved record;
    prompts record;
    previous autoembed.sources;
    src autoembed.sources;
    watch_name constant text := coalesce(watch.name, watch.embedding_column);
    sharing text;
begin
    if source is null then
        raise exception 'autoembed.watch: source table must not be NULL';
    end if;
    if btrim(watch_name) = '' then
        raise exception 'autoembed.watch: name must not be empty';
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
    if emb.attgenerated <> '' then
        raise exception 'autoembed.watch: column %.% is a generated column: autoembed cannot write it', source,
            quote_ident(embedding_column);
    end if;
    if emb.attnotnull then  -- a row is inserted before its vector exists, and a content change empties it
        raise exception 'autoembed.watch: column %.% is NOT NULL, but it must be able to hold NULL: a row has no vector until the worker embeds it, and a content change empties it',
            source, quote_ident(embedding_column)
            using hint = format('Allow NULL: alter table %s alter column %I drop not null; (Django: VectorField(..., null=True, blank=True))',
                                source, embedding_column);
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
    perform autoembed.check_chunk_options(chunks, chunk_tokens, chunk_overlap, chunk_index);
    perform autoembed.check_index_kind(source, emb_type, emb.atttypmod, watch.index);
    prompts := autoembed.resolve_prompts(embedder, model, query_prompt, passage_prompt);

    -- each watch of a table fills its own vector column (and, chunked, its own chunk table)
    select s.name into sharing from autoembed.sources s
    where s.source = watch.source and s.embedding_attnum = emb.attnum and s.name <> watch_name;
    if found then
        raise exception 'autoembed.watch: column %.% is already the embedding column of the watch % of this table',
            source, quote_ident(embedding_column), quote_literal(sharing)
            using hint = format('Give this watch a vector column of its own, or change that watch: autoembed.watch(..., name => %L).', sharing);
    end if;

    select * into previous from autoembed.sources s
    where s.source = watch.source and s.name = watch_name for update;  -- see write_embeddings
    insert into autoembed.sources as s (source, name, table_name, pk_column, content_column, content_function,
                                        embedding_column, pk_attnum, content_attnum, embedding_attnum,
                                        dimensions, embedder, model, distance, max_attempts, clear_on_change,
                                        chunk_tokens, chunk_overlap, query_prompt, passage_prompt, index_kind)
    values (source, watch_name, source::text, pk_cols[1], resolved.content_column, resolved.content_function,
            embedding_column, pk_attnums[1],
            (select a.attnum from pg_attribute a where a.attrelid = source and a.attname = resolved.content_column),
            emb.attnum, emb.atttypmod, embedder, model, distance, max_attempts, coalesce(clear_on_change, true),
            watch.chunk_tokens, watch.chunk_overlap, prompts.query_prompt, prompts.passage_prompt, watch.index)
    on conflict on constraint sources_source_name_key do update
    set table_name = excluded.table_name, pk_column = excluded.pk_column,
        content_column = excluded.content_column, content_function = excluded.content_function,
        embedding_column = excluded.embedding_column, pk_attnum = excluded.pk_attnum,
        content_attnum = excluded.content_attnum, embedding_attnum = excluded.embedding_attnum,
        dimensions = excluded.dimensions,
        embedder = excluded.embedder, model = excluded.model, distance = excluded.distance,
        max_attempts = excluded.max_attempts, clear_on_change = excluded.clear_on_change,
        chunk_tokens = excluded.chunk_tokens, chunk_overlap = excluded.chunk_overlap,
        query_prompt = excluded.query_prompt, passage_prompt = excluded.passage_prompt,
        index_kind = excluded.index_kind, updated_at = now()
    returning * into src;

    perform autoembed.install_triggers(src);
    perform autoembed.refresh_neighbours(src);
    src := autoembed.setup_chunks(src, previous, chunks, chunk_index);

    -- A different content, column, model, passage prompt or chunking makes every stored vector
    -- stale: forget their hashes.
    if previous.id is not null and (previous.content_column, previous.content_function, previous.embedding_column,
                                    previous.embedder, previous.model, previous.passage_prompt,
                                    previous.chunk_table is not null, previous.chunk_tokens, previous.chunk_overlap)
        is distinct from (src.content_column, src.content_function, src.embedding_column, src.embedder, src.model,
                          src.passage_prompt, src.chunk_table is not null, src.chunk_tokens, src.chunk_overlap) then
        delete from autoembed.row_state where source_id = src.id;
        if coalesce(backfill, true) then
            perform autoembed.backfill(source, only_missing => false, watch => src.name);
        end if;
    elsif coalesce(backfill, true) then
        -- a new registration vouches for no stored vector (one left from an earlier watch may
        -- describe content changed since): every row is embedded (the worker writes only vectors
        -- that differ); a registration kept keeps its row_state
        perform autoembed.backfill(source, only_missing => previous.id is not null, watch => src.name);
    end if;
    return src.id;
end
$$;
comment on function autoembed.watch is 'Watch a table: every insert or content change enqueues an embedding job. content is a column or a function taking the table''s row and returning text: schema.name, or an unqualified name looked up in the table''s schema, then in public. A table may have several watches, each with its own name (default: its embedding column''s) and vector column; watching again under a name changes that watch. index (hnsw, ivfflat or none) is the vector index the worker builds on the column once the backfill is done.';

-- Returns what it did, in a sentence (psql shows it; `autoembed unwatch` prints it).
create or replace function autoembed.unwatch(source regclass, watch text)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.source_by_table(source, watch);
    chunks text := src.chunk_table::text;  -- its name, before the table goes
    queued bigint;
    failed bigint;
    what text;
begin
    perform autoembed.drop_triggers(src);
    perform autoembed.drop_chunks(src);
    with gone as (delete from pgmq.q_autoembed_jobs q where q.message ->> 'source_id' = src.id::text returning q.message)
    select coalesce(sum(autoembed.job_size(gone.message)), 0) into queued from gone;
    select count(*) into failed from autoembed.failures f where f.source_id = src.id;
    delete from autoembed.sources where id = src.id;  -- its failure records and row hashes go with it
    what := case when exists (select from autoembed.sources s where s.source = src.source)
                 then format('the watch %L of %s', src.name, src.source) else src.source::text end;
    perform autoembed.refresh_neighbours(src);
    return format('%s is no longer watched: %s queued row(s) and %s failure record(s) dropped; %s', what,
                  queued, failed, case when chunks is null then format('the vectors in column %I stay', src.embedding_column)
                                       else format('its chunk table %s was dropped', chunks) end);
end
$$;
comment on function autoembed.unwatch(regclass, text) is 'Stop watching one of a table''s watches, by name (NULL: its only one); stored vectors stay, its chunk table and pending jobs are dropped. Says what it dropped.';

-- The table's only watch (the form of autoembed 0.2, which Django operations look for).
create or replace function autoembed.unwatch(source regclass)
returns text
language sql
set search_path = pg_catalog, pg_temp
as $$
    select autoembed.unwatch(source, null)
$$;
comment on function autoembed.unwatch(regclass) is 'Stop watching a table watched once (else name the watch: unwatch(table, watch => name)); stored vectors stay, its chunk table and pending jobs are dropped. Says what it dropped.';

-- Enqueue rows in chunks (keyset over the primary key), so memory stays flat on any table size.
create or replace function autoembed.backfill(source regclass, only_missing boolean default true, chunk_size int default 10000,
                                              watch text default null)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.current_names(autoembed.source_by_table(source, watch));
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
comment on function autoembed.backfill is 'Enqueue existing rows (by default only those without an embedding) of a table''s watch.';

create or replace function autoembed.retry_failures(source regclass default null, watch text default null)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    only_source int := case when source is null then null else (autoembed.source_by_table(source, watch)).id end;
    retried bigint;
begin
    if source is null and watch is not null then
        raise exception 'autoembed.retry_failures: a watch is named with its table: retry_failures(''<table>'', watch => %L)', watch;
    end if;
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
comment on function autoembed.retry_failures is 'Re-enqueue failed rows (of one table''s watch, or all) and clear their failure records.';
