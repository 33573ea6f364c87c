-- autoembed core: extensions, registrations, triggers, queue, worker-facing functions.
-- Runs unchanged on Supabase (extensions schema, pgmq/pg_cron/pg_net extensions) and on plain
-- PostgreSQL (pgvector in public, pgmq installed from its SQL by `autoembed migrate`).

-- 1. Extensions --------------------------------------------------------------------------------
do $$
declare
    ext_schema text := case when to_regnamespace('extensions') is not null then 'extensions' else 'public' end;
begin
    if not exists (select from pg_extension where extname = 'vector') then
        if not exists (select from pg_available_extensions where name = 'vector') then
            raise exception 'autoembed needs pgvector (extension "vector"), which is not installed on this server'
                using hint = 'On Debian 12 scripts/setup-system.sh builds it; on Supabase it is always available.';
        end if;
        execute format('create extension vector with schema %I', ext_schema);
    end if;

    if not exists (select from pg_extension where extname = 'pgmq') and to_regnamespace('pgmq') is null then
        if not exists (select from pg_available_extensions where name = 'pgmq') then
            raise exception 'autoembed needs pgmq: neither the extension nor its SQL-only install is present'
                using hint = '`autoembed migrate` installs the SQL-only pgmq first; applying files by hand, run the pgmq Python package''s pgmq/sql/pgmq.sql before this file.';
        end if;
        create extension pgmq;
    end if;

    -- Optional: pg_cron lives in one database per cluster (cron.database_name) and must be preloaded.
    if not exists (select from pg_extension where extname = 'pg_cron')
       and exists (select from pg_available_extensions where name = 'pg_cron')
       and current_database() = coalesce(current_setting('cron.database_name', true), 'postgres') then
        begin
            create extension pg_cron;
        exception when others then
            raise notice 'autoembed: pg_cron not enabled (%): the sweep job is not scheduled', sqlerrm;
        end;
    end if;

    -- Optional: pg_net (Supabase) lets the database call HTTP endpoints itself.
    if not exists (select from pg_extension where extname = 'pg_net')
       and exists (select from pg_available_extensions where name = 'pg_net') then
        begin
            execute format('create extension pg_net with schema %I', ext_schema);
        exception when others then
            raise notice 'autoembed: pg_net not enabled (%)', sqlerrm;
        end;
    end if;
end
$$;

select pgmq.create('autoembed_jobs') where not exists (select from pgmq.meta where queue_name = 'autoembed_jobs');

-- 2. Registrations and per-row state -------------------------------------------------------------
create schema if not exists autoembed;

create table autoembed.sources (
    id int generated always as identity primary key,
    source regclass not null unique,
    table_name text not null,                 -- schema-qualified name at watch time, for reports
    pk_column name not null,                  -- names as at watch time; the attnums below follow renames
    content_column name,                      -- either a column ...
    content_function regprocedure,            -- ... or fn(row) returns text
    embedding_column name not null,
    pk_attnum smallint not null,
    content_attnum smallint,
    embedding_attnum smallint not null,
    dimensions int not null check (dimensions > 0),
    embedder text not null check (embedder in ('local', 'openai', 'hashing')),
    model text not null check (model <> ''),
    distance text not null check (distance in ('cosine', 'l2', 'inner_product')),
    max_attempts int not null check (max_attempts >= 1),
    clear_on_change boolean not null,
    last_success_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((content_column is null) <> (content_function is null))
);
comment on table autoembed.sources is 'Tables watched by autoembed: one row per autoembed.watch() call.';

create table autoembed.row_state (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    content_hash uuid not null,               -- md5 of the content the stored vector embeds
    embedded_at timestamptz not null default now(),
    primary key (source_id, pk)
);
comment on table autoembed.row_state is 'Hash of the content behind each stored vector; lets the worker skip unchanged rows.';

create table autoembed.failures (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    content_hash uuid,
    error_class text not null,
    error_message text not null,
    attempts int not null,
    first_failed_at timestamptz not null default now(),
    failed_at timestamptz not null default now(),
    primary key (source_id, pk)
);
comment on table autoembed.failures is 'Rows that could not be embedded, with the last error. autoembed.retry_failures() re-drives them.';

-- 3. Helpers ---------------------------------------------------------------------------------------
-- The SQL expression for a source's content, evaluated on the row alias `alias`.
create function autoembed.content_expr(src autoembed.sources, alias text)
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

create function autoembed.source_by_table(source regclass)
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

-- The one place that builds job messages: {source_id, pk} and nothing else (no table names, no SQL).
-- Skips an empty list; wakes workers with NOTIFY (delivered at commit). Returns the jobs sent.
create function autoembed.enqueue(source_id int, pks text[])
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if coalesce(cardinality(pks), 0) = 0 then
        return 0;
    end if;
    perform pgmq.send_batch('autoembed_jobs',
        array(select jsonb_build_object('source_id', enqueue.source_id, 'pk', k) from unnest(pks) k));
    perform pg_notify('autoembed', enqueue.source_id::text);
    return cardinality(pks);
end
$$;

-- The registration with its column names as they are now (looked up by attnum, so a renamed
-- column keeps working). A dropped table or column raises undefined_table / undefined_column.
create function autoembed.current_names(src autoembed.sources)
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

-- 4. Triggers --------------------------------------------------------------------------------------
-- Statement-level AFTER INSERT / UPDATE / DELETE (one trigger each, all on this function): one
-- pgmq.send_batch per statement, whatever its row count. An UPDATE enqueues only rows whose content
-- changed; a DELETE forgets the rows' state and failures. A registration that no longer fits the
-- table (dropped column or function) never fails the application's statement: it warns instead.
create function autoembed.on_write()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pks text[];
begin
    select * into src from autoembed.sources where id = tg_argv[0]::int;
    src := autoembed.current_names(src);
    if tg_op = 'INSERT' then
        execute format('select array_agg(n.%I::text) from autoembed_new n', src.pk_column) into pks;
        perform autoembed.enqueue(src.id, pks);
    elsif tg_op = 'UPDATE' then
        execute format(
            'select array_agg(n.%1$I::text)
             from autoembed_new n left join autoembed_old o on o.%1$I = n.%1$I
             where o.%1$I is null or %2$s is distinct from %3$s',
            src.pk_column, autoembed.content_expr(src, 'n'), autoembed.content_expr(src, 'o'))
        into pks;
        perform autoembed.enqueue(src.id, pks);
    else
        execute format('select array_agg(o.%I::text) from autoembed_old o', src.pk_column) into pks;
        delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(pks);
        delete from autoembed.failures f where f.source_id = src.id and f.pk = any(pks);
    end if;
    return null;
exception when undefined_column or undefined_table or undefined_function then
    raise warning 'autoembed: source % is broken (%): % not handled', tg_argv[0], sqlerrm, lower(tg_op);
    return null;
end
$$;

-- Row-level, BEFORE UPDATE, only when the content changed (the trigger's WHEN clause): clears the
-- vector in the same statement, so a search never returns a vector of content that is gone.
create function autoembed.clear_embedding()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    new := jsonb_populate_record(new, jsonb_build_object(tg_argv[0], null));
    return new;
end
$$;

create function autoembed.install_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    perform autoembed.drop_triggers(src.source);
    execute format(
        'create trigger autoembed_enqueue_insert after insert on %s referencing new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_enqueue_update after update on %s
         referencing old table as autoembed_old new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_forget_delete after delete on %s referencing old table as autoembed_old
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    if src.clear_on_change then
        execute format(
            'create trigger autoembed_clear_embedding before update on %s for each row
             when (%s is distinct from %s) execute function autoembed.clear_embedding(%L)',
            src.source, autoembed.content_expr(src, 'old'), autoembed.content_expr(src, 'new'),
            src.embedding_column);
    end if;
end
$$;

create function autoembed.drop_triggers(source regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    trigger_name text;
begin
    foreach trigger_name in array array['autoembed_enqueue_insert', 'autoembed_enqueue_update',
                                        'autoembed_forget_delete', 'autoembed_clear_embedding'] loop
        execute format('drop trigger if exists %I on %s', trigger_name, source);
    end loop;
end
$$;

-- 5. The SQL API -----------------------------------------------------------------------------------
-- Resolve `content`: a column of `source`, or a function taking a `source` row and returning text.
-- Runs with the caller's search_path (no pinned path) so that an unqualified function name
-- resolves as the caller sees it, like the regclass argument; every other name is qualified.
create function autoembed.resolve_content(source regclass, content text, out content_column name, out content_function regprocedure)
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

create function autoembed.watch(
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
    if embedder is null or embedder not in ('local', 'openai', 'hashing') then
        raise exception 'autoembed.watch: unknown embedder %: choose local, openai or hashing', quote_nullable(embedder);
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

create function autoembed.unwatch(source regclass)
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
create function autoembed.backfill(source regclass, only_missing boolean default true, chunk_size int default 10000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources := autoembed.current_names(autoembed.source_by_table(source));
    pk_type text := (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
                     where a.attrelid = src.source and a.attnum = src.pk_attnum);
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

create function autoembed.retry_failures(source regclass default null)
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

-- 6. Worker-facing functions ------------------------------------------------------------------------
-- Rows a worker is embedding right now, so that another worker (or the same worker's next batch)
-- holding a duplicate job for a row does not embed it a second time. Expires with the job's
-- visibility timeout, so a crashed worker's claims lapse with its jobs. Unlogged: claims are
-- worthless after a server crash, and the jobs reappear anyway.
create unlogged table autoembed.claims (
    source_id int not null references autoembed.sources (id) on delete cascade,
    pk text not null,
    claimed_until timestamptz not null,
    primary key (source_id, pk)
);

-- Claim rows for `seconds`; returns the rows this call claimed (the others are claimed elsewhere).
create function autoembed.claim_rows(source_id int, pks text[], seconds int)
returns setof text
language sql
set search_path = pg_catalog, pg_temp
as $$
    insert into autoembed.claims as c (source_id, pk, claimed_until)
    select claim_rows.source_id, k, clock_timestamp() + make_interval(secs => seconds) from unnest(pks) k
    on conflict on constraint claims_pkey do update set claimed_until = excluded.claimed_until
    where c.claimed_until < clock_timestamp()
    returning c.pk
$$;

create function autoembed.release_claims(source_id int, pks text[])
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
    delete from autoembed.claims c where c.source_id = release_claims.source_id and c.pk = any(pks)
$$;

create type autoembed.loaded_row as (pk text, content text, content_hash uuid, up_to_date boolean, error text);

-- Current content of the given rows; rows that no longer exist are absent. up_to_date: the stored
-- vector already embeds exactly this content. When the content function raises for some row, the
-- rows are evaluated one by one and the failing ones carry `error` (their neighbours are unaffected).
-- A dropped table or column raises undefined_table / undefined_column: the source is broken.
create function autoembed.load_content(source_id int, pks text[])
returns setof autoembed.loaded_row
language plpgsql stable
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
    select format_type(a.atttypid, a.atttypmod) into pk_type from pg_attribute a
    where a.attrelid = src.source and a.attnum = src.pk_attnum;
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

-- Write vectors, each only if its row still holds the content that was embedded (the hash) and the
-- registration still names the embedder and model that made it; a row that already holds this very
-- vector is left alone. A NULL vector clears the column (content became NULL or empty).
-- Returns the rows whose vector now embeds their content (written, or already identical).
create function autoembed.write_embeddings(source_id int, embedder text, model text, pks text[], hashes uuid[],
                                           vectors vector[])
returns table (pk text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    written text[];
begin
    -- FOR KEY SHARE: autoembed.watch() locks the registration FOR UPDATE before changing it, so it
    -- waits for this write, or this write sees the new model and skips (the re-queued jobs then embed
    -- with the new one). Unlike FOR SHARE it does not conflict with the last_success_at update below,
    -- which two workers would otherwise deadlock on.
    select * into src from autoembed.sources s where s.id = write_embeddings.source_id for key share;
    if not found or (src.embedder, src.model) is distinct from (write_embeddings.embedder, write_embeddings.model) then
        return;
    end if;
    src := autoembed.current_names(src);
    select format_type(a.atttypid, a.atttypmod) into pk_type from pg_attribute a
    where a.attrelid = src.source and a.attnum = src.pk_attnum;
    execute format(
        'update %1$s t set %2$I = b.vec from unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
         where t.%3$I = b.pk::%4$s and md5(%5$s)::uuid is not distinct from b.hash
           and t.%2$I::real[] is distinct from b.vec::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
    using pks, hashes, vectors;
    -- rows whose vector now embeds their current content: written above, or already identical
    execute format(
        'select array_agg(t.%3$I::text) from %1$s t join unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
           on t.%3$I = b.pk::%4$s
         where md5(%5$s)::uuid is not distinct from b.hash and t.%2$I::real[] is not distinct from b.vec::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
    into written using pks, hashes, vectors;
    if written is null then
        return;
    end if;
    insert into autoembed.row_state as s (source_id, pk, content_hash, embedded_at)
    select src.id, b.pk, b.hash, now()
    from unnest(pks, hashes) b(pk, hash)
    where b.pk = any(written) and b.hash is not null
    on conflict on constraint row_state_pkey do update
    set content_hash = excluded.content_hash, embedded_at = excluded.embedded_at;
    delete from autoembed.row_state s using unnest(pks, hashes) b(pk, hash)  -- a join: stays an index scan
    where b.hash is null and b.pk = any(written) and s.source_id = src.id and s.pk = b.pk;
    delete from autoembed.failures f where f.source_id = src.id and f.pk = any(written);
    update autoembed.sources s set last_success_at = now()
    where s.id = src.id and (s.last_success_at is null or s.last_success_at < now() - interval '1 second');
    return query select unnest(written);
end
$$;

-- Record rows that could not be embedded, unless their content changed meanwhile (a newer job
-- then owns the row). Where the source is broken the guard cannot run: record them anyway.
-- Returns the rows recorded.
create function autoembed.record_failures(source_id int, pks text[], hashes uuid[], error_classes text[],
                                          error_messages text[], attempts int[])
returns table (pk text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    current_rows autoembed.loaded_row[];
begin
    if not exists (select from autoembed.sources s where s.id = record_failures.source_id) then
        return;
    end if;
    begin
        current_rows := array(select l from autoembed.load_content(record_failures.source_id, pks) l);
    exception when undefined_column or undefined_table or undefined_function then
        current_rows := array(select row(b.pk, null, b.hash, false, null)::autoembed.loaded_row
                              from unnest(pks, hashes) b(pk, hash));
    end;
    return query
    with batch as (
        select * from unnest(pks, hashes, error_classes, error_messages, attempts) b(pk, hash, cls, msg, tries)
    )
    insert into autoembed.failures as f (source_id, pk, content_hash, error_class, error_message, attempts)
    select record_failures.source_id, b.pk, b.hash, b.cls, left(b.msg, 2000), b.tries
    from batch b join unnest(current_rows) c on c.pk = b.pk and c.content_hash is not distinct from b.hash
    on conflict on constraint failures_pkey do update
    set content_hash = excluded.content_hash, error_class = excluded.error_class,
        error_message = excluded.error_message, attempts = excluded.attempts, failed_at = now()
    returning f.pk;
end
$$;

-- 7. Status -----------------------------------------------------------------------------------------
create function autoembed.source_status()
returns table (source_id int, source text, state text, embedder text, model text, rows bigint,
               embedded bigint, pending bigint, failed bigint, oldest_pending_age interval,
               last_success_at timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    for src in select * from autoembed.sources order by id loop
        source_id := src.id;
        embedder := src.embedder;
        model := src.model;
        last_success_at := src.last_success_at;
        select count(distinct q.message ->> 'pk'), now() - min(q.enqueued_at) into pending, oldest_pending_age
        from pgmq.q_autoembed_jobs q where q.message ->> 'source_id' = src.id::text;
        select count(*) into failed from autoembed.failures f where f.source_id = src.id;
        rows := null;
        embedded := null;
        source := src.table_name;
        begin
            src := autoembed.current_names(src);
            perform autoembed.content_expr(src, 't');
            source := src.source::text;
            state := 'ok';
            execute format('select count(*), count(%I) from %s', src.embedding_column, src.source)
            into rows, embedded;
        exception
            when undefined_table then
                state := 'table dropped';
            when undefined_column or undefined_function then
                source := src.source::text;
                state := 'broken: ' || sqlerrm;
        end;
        return next;
    end loop;
end
$$;

create view autoembed.status as select * from autoembed.source_status();
comment on view autoembed.status is 'Per watched table: rows, embedded, pending jobs, failures, oldest pending age, last success.';

create view autoembed.queue_status as
select m.queue_name, m.queue_length, m.queue_visible_length, m.oldest_msg_age_sec, m.newest_msg_age_sec,
       m.total_messages, m.scrape_time
from pgmq.metrics('autoembed_jobs') m;
comment on view autoembed.queue_status is 'pgmq metrics of the autoembed job queue.';

create function autoembed.capabilities()
returns table (feature text, available boolean, detail text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select 'vector', true, 'pgvector ' || (select extversion from pg_extension where extname = 'vector')
    union all
    select 'pgmq', true, coalesce('pgmq extension ' || (select extversion from pg_extension where extname = 'pgmq'),
                                  'pgmq SQL-only install (no extension)')
    union all
    select 'pg_cron', e.extversion is not null,
           case when e.extversion is not null then 'pg_cron ' || e.extversion || ': sweep job ' ||
                    case when exists (select from pg_namespace where nspname = 'cron')
                         then 'scheduled' else 'not scheduled' end
                when exists (select from pg_available_extensions where name = 'pg_cron')
                    then 'available but not enabled in this database (cron.database_name = ' ||
                         coalesce(current_setting('cron.database_name', true), 'postgres') ||
                         '): the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler'
                else 'not installed: the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler' end
    from (select (select extversion from pg_extension where extname = 'pg_cron') as extversion) e
    union all
    select 'pg_net', e.extversion is not null,
           case when e.extversion is not null then 'pg_net ' || e.extversion
                else 'not installed: the database cannot wake an HTTP worker by itself (autoembed.schedule_drain_requests); run `autoembed worker`' end
    from (select (select extversion from pg_extension where extname = 'pg_net') as extversion) e
$$;
comment on function autoembed.capabilities is 'Which optional extensions are present, and what is missing without them.';

-- 8. Sweep (pg_cron every minute, or `autoembed sweep`) ----------------------------------------------
-- Re-enqueue rows that are missing an embedding but have neither a pending job nor a failure
-- record (a job lost to a restore, a disabled trigger, a truncated queue); prune the archive.
create function autoembed.sweep(max_rows int default 10000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pks text[];
    total bigint := 0;
begin
    for src in select s.* from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        begin
            src := autoembed.current_names(src);
            execute format(
                'select array(
                     select t.%1$I::text from %2$s t
                     where t.%3$I is null
                       and not exists (select from autoembed.failures f where f.source_id = $1 and f.pk = t.%1$I::text)
                       and t.%1$I::text not in (select q.message ->> ''pk'' from pgmq.q_autoembed_jobs q
                                                where q.message ->> ''source_id'' = $1::text)
                     limit $2)',
                src.pk_column, src.source, src.embedding_column)
            into pks using src.id, max_rows;
            total := total + autoembed.enqueue(src.id, pks);
        exception when undefined_column or undefined_table then
            raise warning 'autoembed.sweep: source % (%) is broken: %', src.id, src.table_name, sqlerrm;
        end;
    end loop;
    delete from pgmq.a_autoembed_jobs where archived_at < now() - interval '7 days';
    return total;
end
$$;

do $$
begin
    if exists (select from pg_extension where extname = 'pg_cron') then
        perform cron.schedule('autoembed-sweep', '* * * * *', 'select autoembed.sweep()');
    end if;
end
$$;

-- 9. Search --------------------------------------------------------------------------------------------
-- Nearest rows to a query vector by the source's distance; runs as the caller, so RLS applies.
create function autoembed.search(source regclass, query vector, k int default 5)
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
