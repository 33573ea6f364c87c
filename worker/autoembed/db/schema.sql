--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: autoembed; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA autoembed;


--
-- Name: loaded_row; Type: TYPE; Schema: autoembed; Owner: -
--

CREATE TYPE autoembed.loaded_row AS (
	pk text,
	content text,
	content_hash uuid,
	up_to_date boolean,
	error text,
	error_kind text
);


--
-- Name: search_hit; Type: TYPE; Schema: autoembed; Owner: -
--

CREATE TYPE autoembed.search_hit AS (
	pk text,
	content text,
	distance double precision,
	chunk text,
	chunk_position integer
);


--
-- Name: backfill(regclass, boolean, integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.backfill(source regclass, only_missing boolean DEFAULT true, chunk_size integer DEFAULT 10000, watch text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: FUNCTION backfill(source regclass, only_missing boolean, chunk_size integer, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.backfill(source regclass, only_missing boolean, chunk_size integer, watch text) IS 'Enqueue existing rows (by default only those without an embedding) of a table''s watch.';


--
-- Name: background_worker_database(text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.background_worker_database(worker_type text, worker_name text) RETURNS name
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select a.datname from pg_stat_activity a
    where a.datname is not null
      and (a.backend_type like worker_type
           or (a.backend_type is null and a.application_name like worker_name
               and exists (select from pg_roles r where r.oid = a.usesysid and r.rolsuper)))
    limit 1
$$;


--
-- Name: capabilities(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.capabilities() RETURNS TABLE(feature text, available boolean, detail text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    cron_version text := (select extversion from pg_extension where extname = 'pg_cron');
    net_version text := (select extversion from pg_extension where extname = 'pg_net');
    cron_db name := autoembed.background_worker_database('pg_cron launcher', 'pg_cron scheduler');
    net_db name := autoembed.background_worker_database('pg\_net%', 'pg\_net %');
    no_sweep constant text := 'the every-minute sweep of missed rows does not run; run `autoembed sweep` from a scheduler';
    no_push constant text := 'the database cannot wake an HTTP worker by itself (autoembed.schedule_drain_requests); run `autoembed worker`';
    sweep_job boolean := false;
    missing text;
begin
    feature := 'vector'; available := true;
    detail := 'pgvector ' || (select extversion from pg_extension where extname = 'vector') || ' in schema ' ||
              (select extnamespace::regnamespace::text from pg_extension where extname = 'vector');
    return next;

    feature := 'pgmq'; available := true;
    detail := coalesce('pgmq extension ' || (select extversion from pg_extension where extname = 'pgmq'),
                       'pgmq SQL-only install (no extension)');
    return next;

    feature := 'pg_cron'; available := autoembed.pg_cron_runs_here();
    if available then
        if has_table_privilege('cron.job', 'select') then
            execute 'select exists (select from cron.job where jobname = ''autoembed-sweep'')' into sweep_job;
        end if;
        detail := format('pg_cron %s: sweep job %s', cron_version, case when sweep_job then 'scheduled' else 'not scheduled' end);
    elsif cron_version is not null then
        detail := format('pg_cron %s is installed here, but its scheduler runs the jobs of %s: %s', cron_version,
                         coalesce('database ' || quote_ident(cron_db), 'no database (it is not in shared_preload_libraries)'), no_sweep);
    elsif exists (select from pg_available_extensions where name = 'pg_cron') then
        detail := format('available but not enabled in this database%s: %s',
                         coalesce(' (its scheduler runs in database ' || quote_ident(cron_db) || ')', ''), no_sweep);
    else
        detail := 'not installed: ' || no_sweep;
    end if;
    return next;

    feature := 'pg_net'; available := autoembed.pg_net_sends_here();
    if available then
        detail := format('pg_net %s: its worker sends the requests of this database', net_version);
    elsif net_version is not null then
        detail := format('pg_net %s is installed here, but its worker sends the requests of %s (pg_net.database_name), '
                         'so requests queued here are never sent: %s', net_version,
                         coalesce('database ' || quote_ident(net_db), 'no database (it is not in shared_preload_libraries)'), no_push);
    else
        detail := 'not installed: ' || no_push;
    end if;
    return next;

    feature := 'vault'; available := autoembed.vault_available();
    detail := case when available then 'Supabase Vault: drain tokens are kept there'
                   else 'no Supabase Vault: drain tokens are kept in autoembed.drain_targets, readable by its owner only' end;
    return next;

    feature := 'privileges';
    select string_agg(format('%s (as %I)', m.statement, m.run_as), '; ') into missing from autoembed.missing_grants() m;
    available := missing is null;
    detail := coalesce('autoembed''s roles lack: ' || missing, 'autoembed_worker and autoembed_search hold what they need');
    return next;
end
$$;


--
-- Name: FUNCTION capabilities(); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.capabilities() IS 'Which optional capabilities work in this database, and what is missing without them.';


--
-- Name: check_chunk_options(boolean, integer, integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.check_chunk_options(chunks boolean, chunk_tokens integer, chunk_overlap integer, chunk_index text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: check_drain_target(text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.check_drain_target(caller text, url text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    if not exists (select from pg_extension where extname = 'pg_net') then
        raise exception '% needs pg_net, which is not installed in this database', caller
            using hint = 'On Supabase enable pg_net; elsewhere run `autoembed worker`, which listens for new jobs itself.';
    end if;
    if not autoembed.pg_net_sends_here() then
        raise exception '%: pg_net''s worker does not send the requests of database %: a request queued here is never sent',
            caller, current_database()
            using hint = 'pg_net sends from the one database named by pg_net.database_name (see autoembed.capabilities()); use that database, or run `autoembed worker`.';
    end if;
    if url is null or url !~ '^https?://' then
        raise exception '%: url must start with http:// or https://, got %', caller, quote_nullable(url);
    end if;
end
$$;


--
-- Name: check_index_kind(regclass, text, integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.check_index_kind(source regclass, embedding_type text, dimensions integer, index text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    most constant int := case embedding_type when 'halfvec' then 4000 else 2000 end;  -- pgvector's limits
begin
    if index is null or index not in ('hnsw', 'ivfflat', 'none') then
        raise exception 'autoembed.watch: unknown index %: choose hnsw, ivfflat or none', quote_nullable(index);
    end if;
    if index <> 'none' and dimensions > most then
        raise exception 'autoembed.watch: a % index holds % vectors of at most % dimensions, the column has %',
            index, embedding_type, most, dimensions
            using hint = 'Watch it with index => ''none'', or use a halfvec column (up to 4000 dimensions).';
    end if;
    if index <> 'none' and (select c.relkind from pg_class c where c.oid = source) = 'p' then
        raise exception 'autoembed.watch: % is partitioned: autoembed builds no index on a partitioned table', source
            using hint = 'Watch it with index => ''none'' and create the index on each partition (CREATE INDEX CONCURRENTLY).';
    end if;
end
$$;


--
-- Name: chunks_of(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.chunks_of(source regclass, watch text DEFAULT NULL::text) RETURNS TABLE(pk text, chunk_position integer, start_char integer, end_char integer, chunk text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION chunks_of(source regclass, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.chunks_of(source regclass, watch text) IS 'The chunks of a chunked watch''s rows, in order, with their offsets in the row''s content. Respects RLS.';


--
-- Name: claim_rows(integer, text[], integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.claim_rows(source_id integer, pks text[], seconds integer) RETURNS SETOF text
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    insert into autoembed.claims as c (source_id, pk, claimed_until)
    select claim_rows.source_id, k, clock_timestamp() + make_interval(secs => seconds) from unnest(pks) k
    on conflict on constraint claims_pkey do update set claimed_until = excluded.claimed_until
    where c.claimed_until < clock_timestamp()
    returning c.pk
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: sources; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE TABLE autoembed.sources (
    id integer NOT NULL,
    source regclass NOT NULL,
    table_name text NOT NULL,
    pk_column name NOT NULL,
    content_column name,
    content_function text,
    embedding_column name NOT NULL,
    pk_attnum smallint NOT NULL,
    content_attnum smallint,
    embedding_attnum smallint NOT NULL,
    dimensions integer NOT NULL,
    embedder text NOT NULL,
    model text NOT NULL,
    distance text NOT NULL,
    max_attempts integer NOT NULL,
    clear_on_change boolean NOT NULL,
    last_success_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    chunk_table regclass,
    chunk_tokens integer,
    chunk_overlap integer,
    query_prompt text DEFAULT ''::text NOT NULL,
    passage_prompt text DEFAULT ''::text NOT NULL,
    problem text,
    problem_at timestamp with time zone,
    name text NOT NULL,
    index_kind text DEFAULT 'none'::text NOT NULL,
    index_problem text,
    index_problem_at timestamp with time zone,
    CONSTRAINT sources_check CHECK (((content_column IS NULL) <> (content_function IS NULL))),
    CONSTRAINT sources_chunk_overlap_check CHECK ((chunk_overlap >= 0)),
    CONSTRAINT sources_chunk_tokens_check CHECK ((chunk_tokens > 0)),
    CONSTRAINT sources_dimensions_check CHECK ((dimensions > 0)),
    CONSTRAINT sources_distance_check CHECK ((distance = ANY (ARRAY['cosine'::text, 'l2'::text, 'inner_product'::text]))),
    CONSTRAINT sources_index_kind_check CHECK ((index_kind = ANY (ARRAY['hnsw'::text, 'ivfflat'::text, 'none'::text]))),
    CONSTRAINT sources_max_attempts_check CHECK ((max_attempts >= 1)),
    CONSTRAINT sources_model_check CHECK ((model <> ''::text)),
    CONSTRAINT sources_name_check CHECK ((btrim(name) <> ''::text))
);


--
-- Name: TABLE sources; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON TABLE autoembed.sources IS 'Tables watched by autoembed: one row per autoembed.watch() call.';


--
-- Name: COLUMN sources.content_function; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.content_function IS 'The content function as schema.name (it takes the table''s row and returns text), or NULL where content_column is set.';


--
-- Name: COLUMN sources.chunk_table; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.chunk_table IS 'The chunks of the rows and their vectors (autoembed.chunks_<id>), where the watch splits its content; NULL otherwise.';


--
-- Name: COLUMN sources.chunk_tokens; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.chunk_tokens IS 'The most tokens of a chunk, by the model''s tokenizer; NULL: the model''s window, at most 512.';


--
-- Name: COLUMN sources.chunk_overlap; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.chunk_overlap IS 'Tokens a chunk repeats of the text before it; NULL: the worker''s default.';


--
-- Name: COLUMN sources.query_prompt; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.query_prompt IS 'Put before a search query when it is embedded (e.g. ''query: '' for e5 models).';


--
-- Name: COLUMN sources.passage_prompt; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.passage_prompt IS 'Put before a row''s content, or each of its chunks, when it is embedded (e.g. ''passage: '').';


--
-- Name: COLUMN sources.problem; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.problem IS 'What the worker last found wrong with this source (shown as its state by autoembed.status); NULL once a write succeeds.';


--
-- Name: COLUMN sources.problem_at; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.problem_at IS 'When the worker reported `problem`.';


--
-- Name: COLUMN sources.name; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.name IS 'The watch''s name, unique per table (by default its embedding column''s).';


--
-- Name: COLUMN sources.index_kind; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.index_kind IS 'The vector index the watch wants on its embedding column, built by the worker once the backfill is done: hnsw, ivfflat or none.';


--
-- Name: COLUMN sources.index_problem; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.index_problem IS 'Why the worker last could not build the wanted index (shown by autoembed.status while not older than the watch); NULL once built.';


--
-- Name: COLUMN sources.index_problem_at; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON COLUMN autoembed.sources.index_problem_at IS 'When the worker reported `index_problem`.';


--
-- Name: content_call(autoembed.sources, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.content_call(src autoembed.sources, arg text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: content_expr(autoembed.sources, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.content_expr(src autoembed.sources, alias text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    if src.content_column is not null then
        return format('%I.%I::text', alias, src.content_column);
    end if;
    return autoembed.content_call(src, format('%I.*', alias));
end
$$;


--
-- Name: current_names(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.current_names(src autoembed.sources) RETURNS autoembed.sources
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: drain_schedule(text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.drain_schedule(every text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    cron_version text := (select extversion from pg_extension where extname = 'pg_cron');
    seconds int;
begin
    if cron_version is null then
        raise exception 'autoembed: pg_cron is not installed in this database, so nothing can be scheduled'
            using hint = 'Enable pg_cron (shared_preload_libraries, cron.database_name) or run `autoembed worker`.';
    end if;
    if every is null or btrim(every) = '' then
        raise exception 'autoembed: schedule must not be empty';
    end if;
    if every ~ '^\s*\d+\s+seconds?\s*$' then
        seconds := substring(every from '\d+')::int;
        if seconds < 1 or seconds > 59 then
            raise exception 'autoembed: a seconds schedule takes 1 to 59 seconds, got %', btrim(every);
        end if;
        if string_to_array(split_part(cron_version, '-', 1), '.')::int[] < array[1, 5] then
            raise exception 'autoembed: pg_cron % schedules by the minute only; ''%'' needs pg_cron 1.5 or later',
                cron_version, btrim(every)
                using hint = 'Use ''* * * * *'' (every minute) here; Supabase''s pg_cron 1.6 accepts ''10 seconds''.';
        end if;
        return format('%s seconds', seconds);
    end if;
    if array_length(regexp_split_to_array(btrim(every), '\s+'), 1) <> 5 then
        raise exception 'autoembed: % is neither ''N seconds'' nor a five-field cron expression', quote_literal(every);
    end if;
    return btrim(every);
end
$_$;


--
-- Name: drop_chunk_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.drop_chunk_triggers(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    installed record;
begin
    for installed in select * from autoembed.source_triggers(src, array['forget_chunks']) loop
        execute format('drop trigger %I on %s', installed.trigger_name, installed.rel);
    end loop;
end
$$;


--
-- Name: drop_chunks(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.drop_chunks(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: drop_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.drop_triggers(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    installed record;
begin
    for installed in select * from autoembed.installed_triggers(src) loop
        execute format('drop trigger %I on %s', installed.trigger_name, installed.rel);
    end loop;
end
$$;


--
-- Name: embedder_kinds(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.embedder_kinds() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select array['local', 'openai', 'e5', 'hashing']
$$;


--
-- Name: enqueue(integer, text[], integer, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.enqueue(source_id integer, pks text[], attempt integer DEFAULT 0, delay_seconds integer DEFAULT 0) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
declare
    chunk constant int := 1000;
begin
    if coalesce(cardinality(pks), 0) = 0 then
        return 0;
    end if;
    insert into pgmq.q_autoembed_jobs (vt, message)
    select clock_timestamp() + make_interval(secs => coalesce(delay_seconds, 0)),
           case when coalesce(attempt, 0) = 0
                then jsonb_build_object('source_id', enqueue.source_id, 'pks', to_jsonb(pks[i:i + chunk - 1]))
                else jsonb_build_object('source_id', enqueue.source_id, 'pks', to_jsonb(pks[i:i + chunk - 1]),
                                        'attempt', attempt) end
    from generate_series(1, cardinality(pks), chunk) i;
    if coalesce(delay_seconds, 0) <= 0 then
        perform pg_notify('autoembed', enqueue.source_id::text);
    end if;
    return cardinality(pks);
end
$$;


--
-- Name: enqueue_range(integer, bigint, bigint); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.enqueue_range(source_id integer, first_pk bigint, last_pk bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
begin
    insert into pgmq.q_autoembed_jobs (vt, message)
    select clock_timestamp(),
           jsonb_build_object('source_id', enqueue_range.source_id,
                              'pk_range', jsonb_build_array(k, least(k::numeric + 999, last_pk)))
    from generate_series(first_pk, last_pk, 1000) k;
    perform pg_notify('autoembed', enqueue_range.source_id::text);
end
$$;


--
-- Name: forget_chunks(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.forget_chunks() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: index_backlog(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_backlog(src autoembed.sources) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select coalesce(sum(autoembed.job_size(m.message)), 0)::bigint
    from (select q.message from pgmq.q_autoembed_jobs q where autoembed.job_source(q.message) = src.id limit 1001) m
$$;


--
-- Name: index_build_running(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_build_running(src autoembed.sources) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select exists (select from pg_locks l
                   where l.locktype = 'advisory' and l.granted and l.pid <> pg_backend_pid()
                     and l.database = (select d.oid from pg_database d where d.datname = current_database())
                     and l.classid = autoembed.index_lock_key()::oid and l.objid = src.id::oid and l.objsubid = 2)
        or exists (select from pg_stat_progress_create_index p
                   where p.pid <> pg_backend_pid() and p.relid = src.source
                     and (p.index_relid = 0 or p.index_relid in (select i.index_oid from autoembed.vector_indexes(src) i)))
$$;


--
-- Name: index_build_statements(integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_build_statements(source_id integer) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    src autoembed.sources;
    index_name name;
    vector_rows bigint;
    options text := '';
begin
    select * into src from autoembed.sources s where s.id = index_build_statements.source_id;
    if not found or not autoembed.index_missing(src) or autoembed.index_build_running(src) then
        return;
    end if;
    src := autoembed.current_names(src);
    index_name := autoembed.index_name(src);
    if exists (select from autoembed.vector_indexes(src) i where i.ours) then
        return next format('drop index concurrently if exists %I.%I',
                           (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = src.source),
                           index_name);
    end if;
    if src.index_kind = 'ivfflat' then
        execute format('select count(*) from %s t where t.%I is not null', src.source, src.embedding_column) into vector_rows;
        options := format(' with (lists = %s)',
                          greatest(1, case when vector_rows <= 1000000 then vector_rows / 1000 else floor(sqrt(vector_rows)) end));
    end if;
    return next format('create index concurrently if not exists %I on %s using %s (%I %s)%s', index_name, src.source,
                       src.index_kind, src.embedding_column,
                       (select format('%I.%I', n.nspname, o.opcname) from pg_opclass o
                        join pg_namespace n on n.oid = o.opcnamespace where o.oid = autoembed.vector_opclass(src, src.index_kind)),
                       options);
end
$$;


--
-- Name: index_how_to_build(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_how_to_build(src autoembed.sources) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select format('`autoembed index %s --watch %s`, or in psql select autoembed.index_statement(%L, %L) \gexec',
                  src.source::regclass, src.name, src.source::regclass::text, src.name)
$$;


--
-- Name: index_lock_key(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_lock_key() RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select 1634033920  -- 'autoembed index', held with the source id as the second key
$$;


--
-- Name: index_missing(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_missing(src autoembed.sources) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select src.index_kind <> 'none'
       and not exists (select from autoembed.vector_indexes(src) i where i.valid and i.matches and i.method = src.index_kind)
$$;


--
-- Name: index_name(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_name(src autoembed.sources) RETURNS name
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    suffix constant text := '_ae' || src.id;
    stem text := (select c.relname || '_' || a.attname from pg_class c join pg_attribute a on a.attrelid = c.oid
                  where c.oid = src.source and a.attnum = src.embedding_attnum);
begin
    while octet_length(stem || suffix) > 63 loop
        stem := left(stem, -1);
    end loop;
    return stem || suffix;
end
$$;


--
-- Name: index_state(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_state(src autoembed.sources, OUT wanted text, OUT index_name name, OUT index_method name, OUT index_opclass name, OUT index_valid boolean, OUT state text, OUT warning boolean) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    found record;
    waits_for text;
begin
    wanted := src.index_kind;
    warning := false;
    select * into found from autoembed.vector_indexes(src) i
    order by (i.valid and i.matches and i.method = src.index_kind) desc, (i.valid and i.matches) desc, i.ours desc,
             i.valid desc, i.index_name
    limit 1;
    index_name := found.index_name;
    index_method := found.method;
    index_opclass := found.opclass;
    index_valid := found.valid;
    if found.valid and found.matches and (found.method = src.index_kind or src.index_kind = 'none') then
        state := format('ready: %I (%s, %s)', found.index_name, found.method, found.opclass);
    elsif src.index_kind <> 'none' and autoembed.index_build_running(src) then
        state := format('building: %I', autoembed.index_name(src));
    elsif src.index_kind <> 'none' and src.index_problem is not null and src.index_problem_at >= src.updated_at then
        state := 'cannot build: ' || src.index_problem;
        warning := true;
    elsif found.valid and not found.matches then
        state := format('mismatch: index %I uses %s, but this watch searches by %s: queries cannot use it and scan the table',
                        found.index_name, found.opclass, src.distance);
        warning := true;
    elsif found.index_name is not null and not found.valid then
        state := format('invalid: index %I is left from a build that did not finish: %s', found.index_name,
                        case when found.ours and src.index_kind <> 'none' then 'autoembed drops it and builds it again'
                             else format('drop it (drop index concurrently %I)', found.index_name) end);
        warning := not (found.ours and src.index_kind <> 'none');
    elsif src.index_kind = 'none' then
        state := 'none wanted';
    else
        waits_for := autoembed.index_waits_for(src);
        state := coalesce('waiting for the backfill: ' || waits_for,
                          format('to build: the worker builds %I next (now: %s)', autoembed.index_name(src),
                                 autoembed.index_how_to_build(src)));
    end if;
end
$$;


--
-- Name: index_statement(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_statement(source regclass, watch text DEFAULT NULL::text) RETURNS SETOF text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select autoembed.index_build_statements((autoembed.source_by_table(index_statement.source, index_statement.watch)).id)
$$;


--
-- Name: FUNCTION index_statement(source regclass, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.index_statement(source regclass, watch text) IS 'The statements that build the vector index a table''s watch wants (none when it is there), to run outside a transaction: in psql, select autoembed.index_statement(''docs'') \gexec';


--
-- Name: index_states(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_states() RETURNS TABLE(source_id integer, source text, watch text, wanted text, index_name name, index_method name, index_opclass name, index_valid boolean, state text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    src autoembed.sources;
    found record;
begin
    for src in select s.* from autoembed.sources s join pg_class c on c.oid = s.source order by s.id loop
        begin
            src := autoembed.current_names(src);
        exception when undefined_column or undefined_table then
            continue;
        end;
        found := autoembed.index_state(src);
        source_id := src.id;
        source := src.source::regclass::text;
        watch := src.name;
        wanted := found.wanted;
        index_name := found.index_name;
        index_method := found.index_method;
        index_opclass := found.index_opclass;
        index_valid := found.index_valid;
        state := found.state;
        return next;
    end loop;
end
$$;


--
-- Name: index_waits_for(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.index_waits_for(src autoembed.sources) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    backlog constant bigint := autoembed.index_backlog(src);
    has_vectors boolean;
begin
    if backlog > 1000 then
        return 'more than 1,000 rows queued';
    end if;
    execute format('select exists (select from %s t where t.%I is not null)', src.source,
                   (autoembed.current_names(src)).embedding_column)
    into has_vectors;
    return case when not has_vectors then 'no row has a vector yet' end;
end
$$;


--
-- Name: indexes_due(interval, integer[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.indexes_due(retry_after interval, watch_ids integer[] DEFAULT NULL::integer[]) RETURNS TABLE(source_id integer, source text, watch text, may_create boolean, how_to_build text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    src autoembed.sources;
begin
    for src in
        select s.* from autoembed.sources s
        join pg_attribute a on a.attrelid = s.source and a.attnum = s.embedding_attnum and not a.attisdropped
        where s.index_kind <> 'none' and (indexes_due.watch_ids is null or s.id = any (indexes_due.watch_ids))
          and (s.index_problem is null or s.index_problem_at < s.updated_at or s.index_problem_at < now() - retry_after)
        order by s.id
    loop
        continue when not autoembed.index_missing(src) or autoembed.index_build_running(src);
        source_id := src.id;
        source := src.source::regclass::text;
        watch := src.name;
        may_create := pg_has_role(current_user, (select c.relowner from pg_class c where c.oid = src.source), 'usage');
        how_to_build := autoembed.index_how_to_build(src);
        -- a role that may not build it learns so at once (it need not read the table)
        continue when case when may_create then autoembed.index_waits_for(src) is not null  -- the backlog, then vectors
                           else autoembed.index_backlog(src) > 1000 end;
        return next;
    end loop;
end
$$;


--
-- Name: install_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.install_triggers(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    spec record;
begin
    perform autoembed.drop_triggers(src);
    for spec in select * from autoembed.trigger_specs(src) loop
        execute spec.ddl;
    end loop;
end
$$;


--
-- Name: installed_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.installed_triggers(src autoembed.sources) RETURNS TABLE(rel regclass, trigger_name name, function_name text, args bytea, definition text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select * from autoembed.source_triggers(src, array['mark_content_changed', 'on_write', 'on_truncate', 'note_statement'])
$$;


--
-- Name: invalid_keys(autoembed.sources, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.invalid_keys(src autoembed.sources, pks text[]) RETURNS TABLE(pk text, error text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: job_attempt(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_attempt(message jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when jsonb_typeof(message -> 'attempt') = 'number'
                then least(greatest(floor((message ->> 'attempt')::numeric), 0), 1000000)::int else 0 end
$$;


--
-- Name: job_integer(jsonb, numeric, numeric); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_integer(value jsonb, low numeric, high numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    select case when jsonb_typeof(value) is distinct from 'number' then false
                when value #>> '{}' !~ '^-?[0-9]{1,20}$' then false
                else (value #>> '{}')::numeric between low and high end
$_$;


--
-- Name: job_is_valid(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_is_valid(message jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when autoembed.job_source(message) is null then false
                when message ? 'attempt' and not autoembed.job_integer(message -> 'attempt', 0, 1000000) then false
                when message ? 'pk_range' then autoembed.job_range(message) is not null
                when message ? 'pks' then
                    case when jsonb_typeof(message -> 'pks') <> 'array' then false
                         when jsonb_array_length(message -> 'pks') not between 1 and 1000 then false
                         else (select bool_and(case when jsonb_typeof(k) <> 'string' then false
                                                    else octet_length(k #>> '{}') <= 2000 end)
                               from jsonb_array_elements(message -> 'pks') k) end
                when message ? 'pk' then
                    case when jsonb_typeof(message -> 'pk') <> 'string' then false
                         else octet_length(message ->> 'pk') <= 2000 end
                else false end
$$;


--
-- Name: job_pks(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_pks(message jsonb) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select k.pk
    from (select autoembed.job_is_valid(message) as valid, autoembed.job_range(message) as r) m,
         lateral (select g::text from generate_series(m.r[1], m.r[2]) g  -- no rows when r is null
                  where m.valid
                  union all
                  select jsonb_array_elements_text(case jsonb_typeof(message -> 'pks')
                                                       when 'array' then message -> 'pks'
                                                       else jsonb_build_array(message -> 'pk') end)
                  where m.valid and m.r is null) k(pk)
$$;


--
-- Name: job_range(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_range(message jsonb) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when jsonb_typeof(message -> 'pk_range') is distinct from 'array' then null
                when jsonb_array_length(message -> 'pk_range') <> 2 then null
                when not autoembed.job_integer(message -> 'pk_range' -> 0, -9223372036854775808, 9223372036854775807)
                  or not autoembed.job_integer(message -> 'pk_range' -> 1, -9223372036854775808, 9223372036854775807)
                    then null
                when (message #>> '{pk_range,1}')::numeric - (message #>> '{pk_range,0}')::numeric not between 0 and 999
                    then null
                else array[(message #>> '{pk_range,0}')::bigint, (message #>> '{pk_range,1}')::bigint] end
$$;


--
-- Name: job_size(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_size(message jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when not autoembed.job_is_valid(message) then 1
                when m.r is not null then (m.r[2] - m.r[1] + 1)::int
                when jsonb_typeof(message -> 'pks') = 'array' then jsonb_array_length(message -> 'pks')
                else 1 end
    from (select autoembed.job_range(message) as r) m
$$;


--
-- Name: job_slice(jsonb, integer, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_slice(message jsonb, skip integer, take integer) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    select case when m.r is not null
                then message || jsonb_build_object('pk_range', jsonb_build_array(
                         m.r[1]::numeric + skip, least(m.r[2]::numeric, m.r[1]::numeric + skip + take - 1)))
                else message || jsonb_build_object('pks', jsonb_path_query_array(
                         message -> 'pks', '$[$from to $to]',
                         jsonb_build_object('from', skip, 'to', coalesce(skip::bigint + take - 1, 2147483647))))
           end
    from (select autoembed.job_range(message) as r) m
$_$;


--
-- Name: job_source(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_source(message jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when jsonb_typeof(message) is distinct from 'object' then null
                when autoembed.job_integer(message -> 'source_id', 1, 2147483647) then (message ->> 'source_id')::int end
$$;


--
-- Name: key_type(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.key_type(src autoembed.sources) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select format_type(a.atttypid, a.atttypmod) from pg_attribute a
    where a.attrelid = src.source and a.attnum = src.pk_attnum
$$;


--
-- Name: load_chunk_vectors(integer, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.load_chunk_vectors(source_id integer, pks text[]) RETURNS TABLE(pk text, chunk_hash uuid, embedding public.vector)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
begin
    select * into src from autoembed.sources s where s.id = load_chunk_vectors.source_id;
    if src.chunk_table is null or not exists (select from pg_class c where c.oid = src.chunk_table) then
        return;
    end if;
    return query execute format(
        'select distinct on (c.parent_pk, c.chunk_hash) c.parent_pk::text, c.chunk_hash, c.embedding::%s
         from %s c where c.parent_pk = any($1::%s[])',
        autoembed.vector_type(), src.chunk_table, autoembed.key_type(src))
    using pks;
end
$_$;


--
-- Name: load_content(integer, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.load_content(source_id integer, pks text[]) RETURNS SETOF autoembed.loaded_row
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: lock_index_build(integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.lock_index_build(source_id integer) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select pg_try_advisory_lock(autoembed.index_lock_key(), source_id)
$$;


--
-- Name: mark_content_changed(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.mark_content_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    perform set_config('autoembed.changed_' || tg_argv[0], 'y', true);
    return null;
end
$$;


--
-- Name: missing_grants(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.missing_grants() RETURNS TABLE(statement text, run_as name, grantable boolean)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    with schemas (role_name, schema_oid) as (
        select 'autoembed_worker'::name, 'pgmq'::regnamespace::oid
        union all
        select r.role_name, e.extnamespace
        from pg_extension e cross join (values ('autoembed_worker'::name), ('autoembed_search'::name)) r (role_name)
        where e.extname = 'vector'
    ), tables (role_name, table_oid, privilege) as (
        select 'autoembed_worker'::name, c.oid, p.privilege
        from pg_class c
        cross join lateral unnest(case c.relname when 'q_autoembed_jobs' then array['select', 'update', 'delete']
                                                 else array['select', 'insert'] end) p (privilege)
        where c.relnamespace = 'pgmq'::regnamespace and c.relname in ('q_autoembed_jobs', 'a_autoembed_jobs')
    ), functions (role_name, function_oid) as (
        select 'autoembed_worker'::name, p.oid from pg_proc p
        where p.pronamespace = 'pgmq'::regnamespace
          and p.proname in ('read', 'delete', 'archive', 'set_vt', 'format_table_name')
    )
    select format('grant usage on schema %I to %I', n.nspname, s.role_name), n.nspowner::regrole::name,
           has_schema_privilege(current_user, n.oid, 'usage with grant option')
    from schemas s join pg_namespace n on n.oid = s.schema_oid
    where not has_schema_privilege(s.role_name, n.oid, 'usage')
    union all
    select format('grant %s on table %s to %I', t.privilege, c.oid::regclass, t.role_name), c.relowner::regrole::name,
           has_table_privilege(current_user, c.oid, t.privilege || ' with grant option')
    from tables t join pg_class c on c.oid = t.table_oid
    where not has_table_privilege(t.role_name, c.oid, t.privilege)
    union all
    select format('grant execute on function %s to %I', p.oid::regprocedure, f.role_name), p.proowner::regrole::name,
           has_function_privilege(current_user, p.oid, 'execute with grant option')
    from functions f join pg_proc p on p.oid = f.function_oid
    where not has_function_privilege(f.role_name, p.oid, 'execute')
    order by 1
$$;


--
-- Name: FUNCTION missing_grants(); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.missing_grants() IS 'Privileges autoembed_worker and autoembed_search need on pgmq and pgvector''s schema and do not hold: the GRANT, and who may run it.';


--
-- Name: model_prompts(text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.model_prompts(embedder text, model text, OUT query_prompt text, OUT passage_prompt text) RETURNS record
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select coalesce(f.query_prompt, ''), coalesce(f.passage_prompt, '')
    from (select 1) one
    left join lateral (
        select p.query_prompt, p.passage_prompt
        from (values
            (1, 'multilingual-e5-[a-z]+-instruct', E'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ', ''),
            (2, '(^|[/_-])e5-', 'query: ', 'passage: '),
            (3, 'bge-m3|bge-multilingual', '', ''),
            (4, 'bge-[a-z]+-zh', '为这个句子生成表示以用于检索相关文章：', ''),
            (5, 'bge-[a-z]+-en|mxbai-embed-large', 'Represent this sentence for searching relevant passages: ', ''),
            (6, 'nomic-embed-text', 'search_query: ', 'search_document: '),
            (7, 'snowflake-arctic-embed-[a-z]+-v2', 'query: ', ''),
            (8, 'snowflake-arctic-embed', 'Represent this sentence for searching relevant passages: ', ''),
            (9, 'qwen3-embedding', E'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:', '')
        ) p (rank, pattern, query_prompt, passage_prompt)
        where model_prompts.embedder <> 'hashing' and model_prompts.model ~* p.pattern
        order by p.rank
        limit 1
    ) f on true
$$;


--
-- Name: FUNCTION model_prompts(embedder text, model text, OUT query_prompt text, OUT passage_prompt text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.model_prompts(embedder text, model text, OUT query_prompt text, OUT passage_prompt text) IS 'The query and passage prompts a known model family expects (e5: query: / passage: , bge, nomic, arctic, ...), or empty ones.';


--
-- Name: note_statement(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.note_statement() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    depth constant text := case when tg_when = 'BEFORE' then (pg_trigger_depth() - 1)::text else '' end;
begin
    perform set_config('autoembed.statement_' || tg_argv[0], depth, true);
    if tg_op = 'UPDATE' or tg_when = 'AFTER' then
        perform set_config('autoembed.moving_' || tg_argv[0], depth, true);
    end if;
    return null;
end
$$;


--
-- Name: on_truncate(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.on_truncate() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
begin
    select * into src from autoembed.sources s where s.id = tg_argv[0]::int;
    if not found or current_setting('autoembed.truncated_' || tg_argv[0], true) = 'y' then
        return null;
    end if;
    if tg_relid = src.source then
        delete from autoembed.row_state s where s.source_id = src.id;
        delete from autoembed.failures f where f.source_id = src.id;
        perform set_config('autoembed.truncated_' || tg_argv[0], 'y', true);
    elsif pg_partition_root(tg_relid) = src.source then
        begin
            src := autoembed.current_names(src);
            execute format('delete from autoembed.row_state s using %s t where s.source_id = $1 and s.pk = t.%I::text',
                           tg_relid::regclass, src.pk_column) using src.id;
            execute format('delete from autoembed.failures f using %s t where f.source_id = $1 and f.pk = t.%I::text',
                           tg_relid::regclass, src.pk_column) using src.id;
        exception when undefined_column or undefined_table then
            raise warning 'autoembed: source % is broken (%): truncate not handled', src.id, sqlerrm;
        end;
    end if;
    return null;
end
$_$;


--
-- Name: on_write(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.on_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    this_source constant int := tg_argv[0]::int;
    changed_flag constant text := 'autoembed.changed_' || tg_argv[0];
    -- the statement's rows: its transition tables, or the row-level fallback's one row ($1, $2)
    new_rows constant text := case when tg_level = 'ROW' then '(select ($1).*)' else 'autoembed_new' end;
    old_rows constant text := case when tg_level = 'ROW' then '(select ($2).*)' else 'autoembed_old' end;
    src autoembed.sources;
    pk_name name;
    integer_keys boolean;
    root regclass;
    first_pk bigint;
    last_pk bigint;
    key_count bigint;
    pks text[];
    gone text[];
    changes text;
begin
    if tg_op = 'INSERT' then
        select s.source, a.attname, a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
        into root, pk_name, integer_keys
        from autoembed.sources s
        left join pg_attribute a on a.attrelid = s.source and a.attnum = s.pk_attnum and not a.attisdropped
        where s.id = this_source;
        if root is null or (tg_relid <> root and pg_partition_root(tg_relid) is distinct from root) then
            return null;  -- unwatched, or a partition detached since: a left-over trigger
        elsif pk_name is null then
            raise warning 'autoembed: source % is broken (its key column was dropped): insert not handled', this_source;
            return null;
        end if;
        if tg_level = 'ROW' then
            execute format('select array[($1).%I::text]', pk_name) into pks using new;
            delete from autoembed.row_state s where s.source_id = this_source and s.pk = any(pks);
            delete from autoembed.failures f where f.source_id = this_source and f.pk = any(pks);
        elsif integer_keys then  -- consecutive keys (a bulk INSERT into an identity table): named by their ends
            execute format('select min(n.%1$I), max(n.%1$I), count(*) from autoembed_new n', pk_name)
            into first_pk, last_pk, key_count;
            if last_pk::numeric - first_pk + 1 = key_count then
                perform autoembed.enqueue_range(this_source, first_pk, last_pk);
                return null;
            end if;
        end if;
        if pks is null then
            execute format('select array_agg(n.%I::text) from autoembed_new n', pk_name) into pks;
        end if;
        perform autoembed.enqueue(this_source, pks);
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if current_setting('autoembed.clearing_' || tg_argv[0], true) = 'y' then
            perform set_config(changed_flag, '', true);  -- autoembed's own clearing of stale vectors (below)
            return null;
        elsif tg_level = 'STATEMENT' then
            if coalesce(current_setting(changed_flag, true), '') = '' then
                return null;  -- no row's key or content changed, no vector went
            end if;
            perform set_config(changed_flag, '', true);
        end if;
    end if;
    begin
        select * into src from autoembed.sources s where s.id = this_source;
        if not found or (tg_relid <> src.source and pg_partition_root(tg_relid) is distinct from src.source) then
            return null;
        end if;
        src := autoembed.current_names(src);
        perform autoembed.content_expr(src, 't');
    exception when undefined_column or undefined_table or undefined_function then
        raise warning 'autoembed: source % is broken (%): % not handled', this_source, sqlerrm, lower(tg_op);
        return null;
    end;
    if tg_op = 'DELETE' then
        execute format('select array_agg(o.%I::text) from %s o', src.pk_column, old_rows) into gone using new, old;
    else
        changes := format(
            'with d as (%s),
                  cleared as (update %s t set %I = null from d where $3 and d.clear and t.%I = d.k)
             select array_agg(d.k::text) filter (where d.enqueue), array_agg(d.ok::text) filter (where d.k is null) from d',
            autoembed.row_changes(src, new_rows, old_rows), tg_relid::regclass, src.embedding_column, src.pk_column);
        -- the content function may fail on some row, and the vector column may refuse NULL (a
        -- constraint, a trigger of the application's): then every row whose other columns changed
        -- counts as changed, then its vector stays (the worker replaces it)
        perform set_config('autoembed.clearing_' || tg_argv[0], 'y', true);
        begin
            execute changes into pks, gone using new, old, src.clear_on_change, src.id, true;
        exception when others then
            begin
                execute changes into pks, gone using new, old, src.clear_on_change, src.id, false;
            exception when others then
                raise warning 'autoembed: source % (%): the vectors of changed rows could not be cleared (%); they stay until their rows are embedded again',
                    src.id, src.table_name, sqlerrm;
                execute changes into pks, gone using new, old, false, src.id, false;
            end;
        end;
        perform set_config('autoembed.clearing_' || tg_argv[0], '', true);
    end if;
    perform autoembed.enqueue(src.id, pks);
    if gone is not null then  -- forget what was known about keys that are gone
        delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(gone);
        delete from autoembed.failures f where f.source_id = src.id and f.pk = any(gone);
    end if;
    return null;
end
$_$;


--
-- Name: parent_visible(oid, smallint, anyelement); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.parent_visible(parent oid, key_attnum smallint, key anyelement) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    visible boolean;
begin
    execute format('select exists (select from %s t where t.%I = $1)', parent::regclass,
                   (select a.attname from pg_attribute a where a.attrelid = parent and a.attnum = key_attnum))
    into visible using key;
    return visible;
end
$_$;


--
-- Name: pg_cron_runs_here(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.pg_cron_runs_here() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select exists (select from pg_extension where extname = 'pg_cron')
       and autoembed.background_worker_database('pg_cron launcher', 'pg_cron scheduler') = current_database()
$$;


--
-- Name: pg_net_sends_here(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.pg_net_sends_here() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select exists (select from pg_extension where extname = 'pg_net')
       and autoembed.background_worker_database('pg\_net%', 'pg\_net %') = current_database()
$$;


--
-- Name: queue_rows(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.queue_rows() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select autoembed.queue_rows('{}'::int[])
$$;


--
-- Name: queue_rows(integer[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.queue_rows(excluding integer[]) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
    where autoembed.job_source(q.message) is null or autoembed.job_source(q.message) <> all(excluding)
$$;


--
-- Name: read_jobs(integer, integer, integer[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer, only_sources integer[] DEFAULT NULL::integer[]) RETURNS TABLE(msg_id bigint, read_ct integer, message jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    visible cursor for
        select q.msg_id, autoembed.job_size(q.message) as n
        from pgmq.q_autoembed_jobs q
        where q.vt <= clock_timestamp()
          and (only_sources is null or autoembed.job_source(q.message) = any (only_sources))
        order by q.msg_id
        for update skip locked;
    job record;
    ids bigint[] := '{}'::bigint[];
    budget int := max_rows;
    split_id bigint;
begin
    if max_rows is null or max_rows < 1 then
        raise exception 'autoembed.read_jobs: max_rows must be at least 1, got %', max_rows;
    end if;
    if vt_seconds is null or vt_seconds < 0 then
        raise exception 'autoembed.read_jobs: vt_seconds must not be negative, got %', vt_seconds;
    end if;
    open visible;
    while budget > 0 loop
        fetch visible into job;
        exit when not found;
        ids := ids || job.msg_id;
        if job.n > budget then
            split_id := job.msg_id;
            exit;
        end if;
        budget := budget - job.n;
    end loop;
    close visible;
    if cardinality(ids) = 0 then
        return;
    end if;
    if split_id is not null then  -- keep `budget` rows, send the rest back with the attempts made
        insert into pgmq.q_autoembed_jobs (vt, message)
        select clock_timestamp(), autoembed.job_slice(q.message, budget, null)
                                  || jsonb_build_object('attempt', autoembed.job_attempt(q.message) + q.read_ct)
        from pgmq.q_autoembed_jobs q where q.msg_id = split_id;
        update pgmq.q_autoembed_jobs q set message = autoembed.job_slice(q.message, 0, budget) where q.msg_id = split_id;
    end if;
    return query
        update pgmq.q_autoembed_jobs q
        set vt = clock_timestamp() + make_interval(secs => vt_seconds), read_ct = q.read_ct + 1
        where q.msg_id = any(ids)
        returning q.msg_id, q.read_ct, q.message;
end
$$;


--
-- Name: record_failures(integer, text[], uuid[], text[], text[], integer[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.record_failures(source_id integer, pks text[], hashes uuid[], error_classes text[], error_messages text[], attempts integer[]) RETURNS TABLE(pk text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
    pk_type text;
    keys text[];
    current_rows autoembed.loaded_row[];
begin
    select * into src from autoembed.sources s where s.id = record_failures.source_id;
    if not found then
        return;
    end if;
    begin
        -- FOR KEY SHARE, as in write_embeddings: a failure is recorded only for a row that keeps its
        -- key until this transaction ends (a DELETE committed meanwhile left its record behind).
        src := autoembed.current_names(src);
        pk_type := autoembed.key_type(src);
        keys := array(select k from unnest(pks) k
                      where k not in (select i.pk from autoembed.invalid_keys(src, pks) i));
        execute format('select count(*) from (select from %1$s t where t.%2$I = any($1::%3$s[]) for key share of t) l',
                       src.source, src.pk_column, pk_type)
        using keys;
        current_rows := array(select l from autoembed.load_content(record_failures.source_id, keys) l);
    exception when undefined_column or undefined_table or undefined_function then
        current_rows := array(select row(b.pk, null, b.hash, false, null, null)::autoembed.loaded_row
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
$_$;


--
-- Name: refresh_neighbours(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.refresh_neighbours(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    other autoembed.sources;
begin
    for other in select s.* from autoembed.sources s where s.source = src.source and s.id <> src.id order by s.id loop
        begin
            perform autoembed.refresh_triggers(other);
        exception when undefined_column or undefined_table or undefined_function then
            raise warning 'autoembed: the triggers of source % (%) were not refreshed: %', other.id, other.table_name, sqlerrm;
        end;
    end loop;
end
$$;


--
-- Name: refresh_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.refresh_triggers(src autoembed.sources) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    if exists (with wanted as (select s.rel, s.trigger_name, s.function_name, autoembed.trigger_args(s.args) as args,
                                      s.literals
                               from autoembed.trigger_specs(src) s),
                    present as (select * from autoembed.installed_triggers(src)),
                    matched as (select w.rel, w.trigger_name, w.function_name, w.args
                                from wanted w join present p using (rel, trigger_name, function_name, args)
                                where w.literals is null
                                   or not exists (select from unnest(w.literals) l where strpos(p.definition, l) = 0))
               (select rel, trigger_name, function_name, args from wanted except select * from matched)
               union all
               (select rel, trigger_name, function_name, args from present except select * from matched)) then
        perform autoembed.install_triggers(src);
        return true;
    end if;
    return false;
end
$$;


--
-- Name: release_claims(integer, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.release_claims(source_id integer, pks text[]) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    delete from autoembed.claims c where c.source_id = release_claims.source_id and c.pk = any(pks)
$$;


--
-- Name: release_jobs(bigint[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.release_jobs(msg_ids bigint[]) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    update pgmq.q_autoembed_jobs q set vt = clock_timestamp() where q.msg_id = any(msg_ids)
$$;


--
-- Name: report_index_problem(integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.report_index_problem(source_id integer, problem text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    update autoembed.sources s set index_problem = left(report_index_problem.problem, 2000), index_problem_at = now()
    where s.id = report_index_problem.source_id
      and (s.index_problem is distinct from report_index_problem.problem or report_index_problem.problem is not null)
$$;


--
-- Name: report_problem(integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.report_problem(source_id integer, problem text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    update autoembed.sources s set problem = left(report_problem.problem, 2000), problem_at = now()
    where s.id = report_problem.source_id and s.problem is distinct from left(report_problem.problem, 2000)
$$;


--
-- Name: request_drain(text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.request_drain(target text DEFAULT 'default'::text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    t autoembed.drain_targets;
    token text;
    visible bigint;
    request_id bigint;
begin
    select * into t from autoembed.drain_targets d where d.name = target;
    if not found then
        raise exception 'autoembed.request_drain: no drain target %', quote_nullable(target)
            using hint = 'Register it with autoembed.set_drain_target(name, url, token).';
    end if;
    perform autoembed.check_drain_target('autoembed.request_drain', t.url);
    select count(*) into visible from pgmq.q_autoembed_jobs where vt <= clock_timestamp();
    if visible = 0 then
        return null;
    end if;
    if t.vault_secret_id is not null then
        execute format('select decrypted_secret from %I.decrypted_secrets where id = $1', 'vault')
        into token using t.vault_secret_id;
    else
        token := t.token;
    end if;
    execute format('select %I.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := $4)', 'net')
    into request_id
    using t.url, jsonb_build_object('queue', 'autoembed_jobs', 'visible_jobs', visible),
          jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || token), t.timeout_ms;
    return request_id;
end
$_$;


--
-- Name: FUNCTION request_drain(target text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.request_drain(target text) IS 'POST a drain request to a drain target when embedding jobs wait (needs pg_net sending from this database).';


--
-- Name: resolve_content(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.resolve_content(source regclass, content text, OUT content_column name, OUT content_function text) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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


--
-- Name: resolve_prompts(text, text, text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.resolve_prompts(embedder text, model text, wanted_query_prompt text, wanted_passage_prompt text, OUT query_prompt text, OUT passage_prompt text) RETURNS record
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    family record := autoembed.model_prompts(embedder, model);
begin
    query_prompt := coalesce(wanted_query_prompt, family.query_prompt);
    passage_prompt := coalesce(wanted_passage_prompt, family.passage_prompt);
    if embedder = 'e5' and (query_prompt, passage_prompt) is distinct from (family.query_prompt, family.passage_prompt) then
        raise exception 'autoembed.watch: the e5 embedder puts % before queries and % before passages itself; other prompts cannot be set',
            quote_literal(family.query_prompt), quote_literal(family.passage_prompt);
    end if;
end
$$;


--
-- Name: retry_failures(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.retry_failures(source regclass DEFAULT NULL::regclass, watch text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION retry_failures(source regclass, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.retry_failures(source regclass, watch text) IS 'Re-enqueue failed rows (of one table''s watch, or all) and clear their failure records.';


--
-- Name: row_changes(autoembed.sources, text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.row_changes(src autoembed.sources, new_rows text, old_rows text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    as_source_row text;
begin
    if src.content_column is not null then
        return format(
            'select n.k, o.k as ok,
                    n.k is not null and (o.k is null or n.c is distinct from o.c
                                         or (o.v and not n.v and n.c ~ ''[^[:space:]]'')) as enqueue,
                    n.k is not null and n.v and (o.k is null or n.c is distinct from o.c) as clear
             from (select t.%1$I as k, %2$s as c, t.%3$I is not null as v from %4$s t) n
             full join (select t.%1$I as k, %2$s as c, t.%3$I is not null as v from %5$s t) o on o.k = n.k',
            src.pk_column, autoembed.content_expr(src, 't'), src.embedding_column, new_rows, old_rows);
    end if;
    -- a row as the content function takes it: of the source table's type, also on a partition
    as_source_row := format('row(%s)::%s',
        (select string_agg(format('t.%I', a.attname), ', ' order by a.attnum) from pg_attribute a
         where a.attrelid = src.source and a.attnum > 0 and not a.attisdropped), src.source);
    return format(
        'select k, ok, k is not null and (ok is null or dropped or changed) as enqueue,
                k is not null and v and (ok is null or changed) as clear
         from (select n.k, o.k as ok, n.v, coalesce(o.v and not n.v, false) as dropped,
                      case when n.k is null or o.k is null then false
                           when jsonb_populate_record(n.r, %6$L::jsonb) *= jsonb_populate_record(o.r, %6$L::jsonb) then false
                           when not $5 then true
                           when n.v and s.content_hash is not null then md5(%7$s)::uuid is distinct from s.content_hash
                           else %7$s is distinct from %8$s end as changed
               from (select t.%1$I as k, t.%3$I is not null as v, %2$s as r from %4$s t) n
               full join (select t.%1$I as k, t.%3$I is not null as v, %2$s as r from %5$s t) o on o.k = n.k
               left join autoembed.row_state s on s.source_id = $4 and s.pk = n.k::text
               offset 0) c',
        src.pk_column, as_source_row, src.embedding_column, new_rows, old_rows,
        (select jsonb_object_agg(a.attname, null) from pg_attribute a
         where a.attrelid = src.source and a.attnum = any (autoembed.vector_attnums(src))),
        autoembed.content_call(src, 'n.r'),
        autoembed.content_call(src, 'o.r'));
end
$_$;


--
-- Name: schedule_drain_requests(text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.schedule_drain_requests(target text DEFAULT 'default'::text, every text DEFAULT '10 seconds'::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    schedule text := autoembed.drain_schedule(every);
    url text := (select d.url from autoembed.drain_targets d where d.name = target);
    job_id bigint;
begin
    if url is null then
        raise exception 'autoembed.schedule_drain_requests: no drain target %', quote_nullable(target)
            using hint = 'Register it first with autoembed.set_drain_target(name, url, token).';
    end if;
    perform autoembed.check_drain_target('autoembed.schedule_drain_requests', url);
    if not autoembed.pg_cron_runs_here() then
        raise exception 'autoembed.schedule_drain_requests: pg_cron''s scheduler does not run the jobs of database %', current_database()
            using hint = 'pg_cron runs jobs in the one database named by cron.database_name (see autoembed.capabilities()).';
    end if;
    execute format('select %I.schedule($1, $2, $3)', 'cron') into job_id
    using 'autoembed-drain-requests', schedule, format('select autoembed.request_drain(%L)', target);
    return job_id;
end
$_$;


--
-- Name: FUNCTION schedule_drain_requests(target text, every text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.schedule_drain_requests(target text, every text) IS 'Every `every` (''10 seconds'' on pg_cron 1.5+), POST to a drain target when embedding jobs wait (needs pg_net and pg_cron serving this database).';


--
-- Name: search(regclass, public.vector, integer, integer, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.search(source regclass, query public.vector, k integer DEFAULT 5, chunks_per_row integer DEFAULT 1, watch text DEFAULT NULL::text) RETURNS TABLE(pk text, content text, distance double precision, chunk text, chunk_position integer)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: FUNCTION search(source regclass, query public.vector, k integer, chunks_per_row integer, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.search(source regclass, query public.vector, k integer, chunks_per_row integer, watch text) IS 'The k rows nearest to a query vector by the table''s distance; for a chunked watch each with its nearest chunk (or up to chunks_per_row of them). Respects RLS.';


--
-- Name: search_settings(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.search_settings(source regclass, watch text DEFAULT NULL::text) RETURNS TABLE(embedder text, model text, dimensions integer, query_prompt text, chunked boolean)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select s.embedder, s.model, s.dimensions, s.query_prompt, s.chunk_table is not null
    from autoembed.source_by_table(search_settings.source, search_settings.watch) s
$$;


--
-- Name: FUNCTION search_settings(source regclass, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.search_settings(source regclass, watch text) IS 'How to embed a query for autoembed.search on this table: embedder, model, dimensions and the query prompt.';


--
-- Name: set_drain_target(text, text, text, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.set_drain_target(name text, url text, token text, timeout_ms integer DEFAULT 5000) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    if url is null or url !~ '^https?://' then
        raise exception 'autoembed.set_drain_target: url must start with http:// or https://, got %', quote_nullable(url);
    end if;
    if token is null or btrim(token) = '' then
        raise exception 'autoembed.set_drain_target: token must not be empty (it is the server''s AUTOEMBED_DRAIN_TOKEN)';
    end if;
    insert into autoembed.drain_targets as t (name, url, timeout_ms) values (name, url, coalesce(timeout_ms, 5000))
    on conflict on constraint drain_targets_pkey do update
    set url = excluded.url, timeout_ms = excluded.timeout_ms, updated_at = now();
    perform autoembed.store_drain_token(name, btrim(token));
end
$$;


--
-- Name: FUNCTION set_drain_target(name text, url text, token text, timeout_ms integer); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.set_drain_target(name text, url text, token text, timeout_ms integer) IS 'Register where drain requests go: an `autoembed serve` URL (…/drain) and its bearer token (kept in Vault where there is one).';


--
-- Name: setup_chunks(autoembed.sources, autoembed.sources, boolean, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.setup_chunks(src autoembed.sources, previous autoembed.sources, chunks boolean, chunk_index text) RETURNS autoembed.sources
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: source_by_table(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_by_table(source regclass, watch text DEFAULT NULL::text) RETURNS autoembed.sources
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: source_status(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_status() RETURNS TABLE(source_id integer, source text, watch text, state text, index text, embedder text, model text, rows bigint, embedded bigint, pending bigint, failed bigint, unaccounted bigint, oldest_pending_age interval, last_success_at timestamp with time zone)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
    reported text;
    vector_index record;
begin
    for src in select * from autoembed.sources order by id loop
        source_id := src.id;
        watch := src.name;
        embedder := src.embedder;
        model := src.model;
        last_success_at := src.last_success_at;
        reported := case when src.problem_at >= src.updated_at then src.problem end;
        select count(distinct j.pk), now() - min(j.enqueued_at) into pending, oldest_pending_age
        from autoembed.jobs j where j.source_id = src.id;
        select count(*) into failed from autoembed.failures f where f.source_id = src.id;
        rows := null;
        embedded := null;
        unaccounted := null;
        index := null;
        source := src.table_name;
        begin
            src := autoembed.current_names(src);
            perform autoembed.content_expr(src, 't');
            source := src.source::text;
            execute format(
                'select count(*), count(t.%1$I), count(*) filter (where t.%1$I is null and f.pk is null and j.pk is null)
                 from %2$s t
                 left join autoembed.failures f on f.source_id = $1 and f.pk = t.%3$I::text
                 left join (select distinct jobs.pk from autoembed.jobs where jobs.source_id = $1) j on j.pk = t.%3$I::text',
                src.embedding_column, src.source, src.pk_column)
            into rows, embedded, unaccounted using src.id;
            vector_index := autoembed.index_state(src);
            index := vector_index.state;
            state := case when reported is not null then reported
                          when unaccounted > 0 then format('%s rows unaccounted for (no embedding, job or failure): '
                                                           'autoembed.sweep() re-enqueues them', unaccounted)
                          when vector_index.warning then 'index ' || vector_index.state
                          else 'ok' end;
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
$_$;


--
-- Name: source_tables(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_tables(source regclass) RETURNS SETOF regclass
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select source
    union
    select t.relid from pg_partition_tree(source) t join pg_class c on c.oid = t.relid
    where t.level > 0 and c.relkind in ('r', 'p')
$$;


--
-- Name: source_triggers(autoembed.sources, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_triggers(src autoembed.sources, functions text[]) RETURNS TABLE(rel regclass, trigger_name name, function_name text, args bytea, definition text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select t.tgrelid::regclass, t.tgname, p.proname::text, t.tgargs, pg_get_triggerdef(t.oid)
    from pg_trigger t join pg_proc p on p.oid = t.tgfoid
    where t.tgrelid in (select autoembed.source_tables(src.source)) and t.tgparentid = 0
      and p.pronamespace = 'autoembed'::regnamespace and p.proname = any (functions)
      and (t.tgargs = autoembed.trigger_args(array[src.id::text])
           or not exists (select from autoembed.sources s
                          where s.source = src.source and t.tgargs = autoembed.trigger_args(array[s.id::text])))
$$;


--
-- Name: store_drain_token(text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.store_drain_token(name text, token text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    target autoembed.drain_targets;
    secret_id uuid;
begin
    select * into strict target from autoembed.drain_targets t where t.name = store_drain_token.name for update;
    if not autoembed.vault_available() then
        update autoembed.drain_targets t set token = store_drain_token.token, updated_at = now() where t.name = target.name;
        return;
    end if;
    if target.vault_secret_id is not null then
        execute format('select %I.update_secret($1, $2)', 'vault') using target.vault_secret_id, token;
        secret_id := target.vault_secret_id;
    else
        execute format('select %I.create_secret($1, $2, $3)', 'vault') into secret_id
        using token, 'autoembed_drain_' || target.name, 'bearer token of autoembed drain target ' || target.name;
    end if;
    update autoembed.drain_targets t set token = null, vault_secret_id = secret_id, updated_at = now()
    where t.name = target.name;
end
$_$;


--
-- Name: sweep(integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.sweep(max_rows integer DEFAULT 10000) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
                       and t.%1$I::text not in (select j.pk from autoembed.jobs j where j.source_id = $1)
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
$_$;


--
-- Name: trigger_args(text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.trigger_args(args text[]) RETURNS bytea
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select coalesce(string_agg(convert_to(a, getdatabaseencoding()) || '\x00'::bytea, ''::bytea order by n), ''::bytea)
    from unnest(args) with ordinality u(a, n)
$$;


--
-- Name: trigger_specs(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.trigger_specs(src autoembed.sources) RETURNS TABLE(rel regclass, trigger_name name, function_name text, args text[], literals text[], ddl text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    partitioned constant boolean := exists (select from pg_class c where c.oid = src.source
                                                                      and (c.relkind = 'p' or c.relispartition));
    id constant text := src.id::text;
    mask jsonb;
    vector_mask jsonb;
begin
    src := autoembed.current_names(src);
    mask := (select coalesce(jsonb_object_agg(a.attname, null), '{}') from pg_attribute a
             where a.attrelid = src.source and a.attnum > 0 and not a.attisdropped
               and case when src.content_column is null then a.attnum = any (autoembed.vector_attnums(src))
                        else a.attname <> all (array[src.pk_column, src.content_column]) end);
    vector_mask := jsonb_build_object(src.embedding_column, null);
    rel := src.source;
    trigger_name := 'autoembed_mark_changed_' || id;
    function_name := 'mark_content_changed';
    args := array[id];
    literals := array[quote_literal(mask::text), quote_literal(vector_mask::text)];
    ddl := format('create trigger %I after update on %s for each row
                   when ((jsonb_populate_record(old, %L::jsonb) *<> jsonb_populate_record(new, %L::jsonb)
                          or (jsonb_populate_record(new, %L::jsonb) *= new and jsonb_populate_record(old, %L::jsonb) *<> old))
                         and pg_catalog.current_setting(%L, true) is distinct from ''y'')
                   execute function autoembed.mark_content_changed(%L)',
                  trigger_name, rel, mask, mask, vector_mask, vector_mask, 'autoembed.clearing_' || id, id);
    return next;
    literals := null;
    for rel in select autoembed.source_tables(src.source) loop
        trigger_name := 'autoembed_enqueue_insert_' || id;
        function_name := 'on_write';
        args := array[id];
        ddl := format('create trigger %I after insert on %s referencing new table as autoembed_new
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_enqueue_update_' || id;
        ddl := format('create trigger %I after update on %s
                       referencing old table as autoembed_old new table as autoembed_new
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_forget_delete_' || id;
        ddl := format('create trigger %I after delete on %s referencing old table as autoembed_old
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_forget_truncate_' || id;
        function_name := 'on_truncate';
        ddl := format('create trigger %I before truncate on %s for each statement
                       execute function autoembed.on_truncate(%L)', trigger_name, rel, id);
        return next;
        continue when not partitioned;
        function_name := 'note_statement';
        trigger_name := 'autoembed_statement_begin_' || id;
        ddl := format('create trigger %I before insert or update or delete on %s for each statement
                       execute function autoembed.note_statement(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_statement_end_' || id;
        ddl := format('create trigger %I after insert or update or delete on %s for each statement
                       execute function autoembed.note_statement(%L)', trigger_name, rel, id);
        return next;
    end loop;
    if partitioned then
        rel := src.source;
        trigger_name := 'autoembed_mark_moved_' || id;
        function_name := 'mark_content_changed';
        args := array[id];
        ddl := format('create trigger %I after delete on %s for each row
                       when (pg_catalog.current_setting(%L, true) = pg_catalog.pg_trigger_depth()::text)
                       execute function autoembed.mark_content_changed(%L)', trigger_name, rel, 'autoembed.moving_' || id, id);
        return next;
        trigger_name := 'autoembed_partition_rows_' || id;
        function_name := 'on_write';
        args := array[id];
        ddl := format('create trigger %I after insert or update or delete on %s for each row
                       when (pg_catalog.current_setting(%L, true) is distinct from pg_catalog.pg_trigger_depth()::text)
                       execute function autoembed.on_write(%L)', trigger_name, rel, 'autoembed.statement_' || id, id);
        return next;
    end if;
end
$$;


--
-- Name: unlock_index_build(integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unlock_index_build(source_id integer) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select pg_advisory_unlock(autoembed.index_lock_key(), source_id)
$$;


--
-- Name: unschedule_drain_requests(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unschedule_drain_requests() RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    done boolean;
begin
    execute format('select %I.unschedule($1)', 'cron') into done using 'autoembed-drain-requests';
    return done;
end
$_$;


--
-- Name: unwatch(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unwatch(source regclass) RETURNS text
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select autoembed.unwatch(source, null)
$$;


--
-- Name: FUNCTION unwatch(source regclass); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.unwatch(source regclass) IS 'Stop watching a table watched once (else name the watch: unwatch(table, watch => name)); stored vectors stay, its chunk table and pending jobs are dropped. Says what it dropped.';


--
-- Name: unwatch(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unwatch(source regclass, watch text) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION unwatch(source regclass, watch text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.unwatch(source regclass, watch text) IS 'Stop watching one of a table''s watches, by name (NULL: its only one); stored vectors stay, its chunk table and pending jobs are dropped. Says what it dropped.';


--
-- Name: vault_available(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.vault_available() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select to_regclass('vault.decrypted_secrets') is not null
       and (select count(distinct p.proname) = 2 from pg_proc p
            where p.pronamespace = to_regnamespace('vault') and p.proname in ('create_secret', 'update_secret'))
$$;


--
-- Name: vector_attnums(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.vector_attnums(src autoembed.sources) RETURNS smallint[]
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select array_agg(distinct a) from (select src.embedding_attnum
                                       union all
                                       select s.embedding_attnum from autoembed.sources s where s.source = src.source) v(a)
$$;


--
-- Name: vector_indexes(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.vector_indexes(src autoembed.sources) RETURNS TABLE(index_oid oid, index_name name, method name, opclass name, valid boolean, matches boolean, ours boolean)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select c.oid, c.relname, m.amname, o.opcname, i.indisvalid and i.indisready,
           o.oid = autoembed.vector_opclass(src, m.amname), c.relname = autoembed.index_name(src)
    from pg_index i
    join pg_class c on c.oid = i.indexrelid
    join pg_am m on m.oid = c.relam and m.amname in ('hnsw', 'ivfflat')
    join pg_opclass o on o.oid = i.indclass[0]
    where i.indrelid = src.source and i.indnatts = 1 and i.indkey[0] = src.embedding_attnum
    order by c.relname
$$;


--
-- Name: vector_opclass(autoembed.sources, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.vector_opclass(src autoembed.sources, method text) RETURNS oid
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select o.oid
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    join pg_opclass o on o.opcintype = a.atttypid
                     and o.opcname = t.typname || case src.distance when 'cosine' then '_cosine_ops'
                                                                    when 'l2' then '_l2_ops' else '_ip_ops' end
    join pg_am m on m.oid = o.opcmethod and m.amname = method
    where a.attrelid = src.source and a.attnum = src.embedding_attnum
$$;


--
-- Name: vector_type(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.vector_type() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select format('%I.%I', n.nspname, t.typname)
    from pg_type t
    join pg_namespace n on n.oid = t.typnamespace
    join pg_depend d on d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'vector'
    where t.typname = 'vector'
$$;


--
-- Name: watch(regclass, text, name, text, text, text, integer, boolean, boolean, boolean, integer, integer, text, text, text, text, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.watch(source regclass, content text, embedding_column name DEFAULT 'embedding'::name, embedder text DEFAULT 'local'::text, model text DEFAULT 'sentence-transformers/all-MiniLM-L6-v2'::text, distance text DEFAULT 'cosine'::text, max_attempts integer DEFAULT 5, clear_on_change boolean DEFAULT true, backfill boolean DEFAULT true, chunks boolean DEFAULT false, chunk_tokens integer DEFAULT NULL::integer, chunk_overlap integer DEFAULT NULL::integer, chunk_index text DEFAULT 'hnsw'::text, query_prompt text DEFAULT NULL::text, passage_prompt text DEFAULT NULL::text, name text DEFAULT NULL::text, index text DEFAULT 'none'::text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION watch(source regclass, content text, embedding_column name, embedder text, model text, distance text, max_attempts integer, clear_on_change boolean, backfill boolean, chunks boolean, chunk_tokens integer, chunk_overlap integer, chunk_index text, query_prompt text, passage_prompt text, name text, index text); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.watch(source regclass, content text, embedding_column name, embedder text, model text, distance text, max_attempts integer, clear_on_change boolean, backfill boolean, chunks boolean, chunk_tokens integer, chunk_overlap integer, chunk_index text, query_prompt text, passage_prompt text, name text, index text) IS 'Watch a table: every insert or content change enqueues an embedding job. content is a column or a function taking the table''s row and returning text: schema.name, or an unqualified name looked up in the table''s schema, then in public. A table may have several watches, each with its own name (default: its embedding column''s) and vector column; watching again under a name changes that watch. index (hnsw, ivfflat or none) is the vector index the worker builds on the column once the backfill is done.';


--
-- Name: watch_ids(text[], boolean); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.watch_ids(watches text[], strict boolean DEFAULT true) RETURNS integer[]
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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


--
-- Name: write_chunks(integer, text, text, text[], uuid[], public.vector[], text[], uuid[], integer[], integer[], integer[], integer[], text[], public.vector[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.write_chunks(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[], chunk_pks text[], chunk_hashes uuid[], occurrences integer[], positions integer[], starts integer[], ends integer[], texts text[], chunk_vectors public.vector[]) RETURNS TABLE(pk text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
    key_type text;
    written text[];
begin
    written := array(select w.pk from autoembed.write_embeddings(source_id, embedder, model, pks, hashes, vectors) w);
    select * into src from autoembed.sources s where s.id = write_chunks.source_id;
    if cardinality(written) = 0 or src.chunk_table is null then
        return query select unnest(written);
        return;
    end if;
    key_type := autoembed.key_type(src);
    execute format(
        'with new as (
             select n.* from unnest($1::text[], $2::uuid[], $3::int[], $4::int[], $5::int[], $6::int[], $7::text[], $8)
                 as n (pk, chunk_hash, occurrence, position, start_char, end_char, chunk, embedding)
             where n.pk = any($9)
         ), gone as (
             delete from %1$s c
             where c.parent_pk = any($9::%2$s[])
               and not exists (select from new n where n.pk::%2$s = c.parent_pk and n.chunk_hash = c.chunk_hash
                                                   and n.occurrence = c.occurrence)
         )
         insert into %1$s as c (parent_pk, chunk_hash, occurrence, position, start_char, end_char, chunk, embedding)
         select n.pk::%2$s, n.chunk_hash, n.occurrence, n.position, n.start_char, n.end_char, n.chunk, n.embedding
         from new n
         on conflict (parent_pk, chunk_hash, occurrence) do update
         set position = excluded.position, start_char = excluded.start_char, end_char = excluded.end_char
         where (c.position, c.start_char, c.end_char)
               is distinct from (excluded.position, excluded.start_char, excluded.end_char)',
        src.chunk_table, key_type)
    using chunk_pks, chunk_hashes, occurrences, positions, starts, ends, texts, chunk_vectors, written;
    return query select unnest(written);
end
$_$;


--
-- Name: write_embeddings(integer, text, text, text[], uuid[], public.vector[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]) RETURNS TABLE(pk text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    src autoembed.sources;
    pk_type text;
    column_type text;
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
    pk_type := autoembed.key_type(src);
    select format_type(a.atttypid, a.atttypmod) into column_type
    from pg_attribute a where a.attrelid = src.source and a.attnum = src.embedding_attnum;
    execute format(
        'update %1$s t set %2$I = b.vec from unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
         where t.%3$I = b.pk::%4$s and md5(%5$s)::uuid is not distinct from b.hash
           and t.%2$I::real[] is distinct from b.vec::%6$s::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'), column_type)
    using pks, hashes, vectors;
    -- rows whose vector now embeds their current content: written above, or already identical
    -- FOR KEY SHARE: until this transaction ends nobody can delete these rows or change their keys
    -- (other updates go on), so the row_state written below belongs to rows that have these keys. A
    -- row whose vector was already identical is not locked by the UPDATE above: without this lock a
    -- DELETE committed meanwhile left its row_state behind.
    execute format(
        'select array(select t.%3$I::text from %1$s t join unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
                        on t.%3$I = b.pk::%4$s
                      where md5(%5$s)::uuid is not distinct from b.hash
                        and t.%2$I::real[] is not distinct from b.vec::%6$s::real[]
                      for key share of t)',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'), column_type)
    into written using pks, hashes, vectors;
    if cardinality(written) = 0 then
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
    -- a write succeeded: whatever the worker reported wrong with the source is over
    update autoembed.sources s set last_success_at = now(), problem = null, problem_at = null
    where s.id = src.id
      and (s.last_success_at is null or s.last_success_at < now() - interval '1 second' or s.problem is not null);
    return query select unnest(written);
end
$_$;


--
-- Name: claims; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE UNLOGGED TABLE autoembed.claims (
    source_id integer NOT NULL,
    pk text NOT NULL,
    claimed_until timestamp with time zone NOT NULL
);


--
-- Name: drain_targets; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE TABLE autoembed.drain_targets (
    name text NOT NULL,
    url text NOT NULL,
    token text,
    vault_secret_id uuid,
    timeout_ms integer DEFAULT 5000 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT drain_targets_name_check CHECK ((name ~ '^[a-z0-9_-]{1,63}$'::text)),
    CONSTRAINT drain_targets_timeout_ms_check CHECK ((timeout_ms > 0)),
    CONSTRAINT drain_targets_url_check CHECK ((url ~ '^https?://'::text))
);


--
-- Name: TABLE drain_targets; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON TABLE autoembed.drain_targets IS 'Where pg_cron + pg_net send drain requests (autoembed.set_drain_target); readable by its owner only.';


--
-- Name: failures; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE TABLE autoembed.failures (
    source_id integer NOT NULL,
    pk text NOT NULL,
    content_hash uuid,
    error_class text NOT NULL,
    error_message text NOT NULL,
    attempts integer NOT NULL,
    first_failed_at timestamp with time zone DEFAULT now() NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: TABLE failures; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON TABLE autoembed.failures IS 'Rows that could not be embedded, with the last error. autoembed.retry_failures() re-drives them.';


--
-- Name: index_status; Type: VIEW; Schema: autoembed; Owner: -
--

CREATE VIEW autoembed.index_status AS
 SELECT index_states.source_id,
    index_states.source,
    index_states.watch,
    index_states.wanted,
    index_states.index_name,
    index_states.index_method,
    index_states.index_opclass,
    index_states.index_valid,
    index_states.state
   FROM autoembed.index_states() index_states(source_id, source, watch, wanted, index_name, index_method, index_opclass, index_valid, state);


--
-- Name: VIEW index_status; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON VIEW autoembed.index_status IS 'Per watch: the vector index it wants, the index found on its embedding column (name, method, operator class, valid) and its state.';


--
-- Name: jobs; Type: VIEW; Schema: autoembed; Owner: -
--

CREATE VIEW autoembed.jobs AS
 SELECT q.msg_id,
    autoembed.job_source(q.message) AS source_id,
    k.pk,
    (autoembed.job_attempt(q.message) + q.read_ct) AS attempts,
    q.enqueued_at,
    q.vt AS visible_at
   FROM pgmq.q_autoembed_jobs q,
    LATERAL autoembed.job_pks(q.message) k(pk);


--
-- Name: VIEW jobs; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON VIEW autoembed.jobs IS 'One line per row waiting in the job queue: its message, attempts so far and when it is next visible.';


--
-- Name: queue_status; Type: VIEW; Schema: autoembed; Owner: -
--

CREATE VIEW autoembed.queue_status AS
 SELECT m.queue_name,
    m.queue_length,
    ( SELECT count(*) AS count
           FROM pgmq.q_autoembed_jobs q
          WHERE (q.vt <= clock_timestamp())) AS queue_visible_length,
    m.oldest_msg_age_sec,
    m.newest_msg_age_sec,
    m.total_messages,
    m.scrape_time,
    autoembed.queue_rows() AS queue_rows
   FROM pgmq.metrics('autoembed_jobs'::text) m(queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages, scrape_time, queue_visible_length, default_partition_length);


--
-- Name: VIEW queue_status; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON VIEW autoembed.queue_status IS 'pgmq metrics of the autoembed job queue (lengths in messages), and the rows its messages name.';


--
-- Name: row_state; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE TABLE autoembed.row_state (
    source_id integer NOT NULL,
    pk text NOT NULL,
    content_hash uuid NOT NULL,
    embedded_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: TABLE row_state; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON TABLE autoembed.row_state IS 'Hash of the content behind each stored vector; lets the worker skip unchanged rows.';


--
-- Name: schema_migrations; Type: TABLE; Schema: autoembed; Owner: -
--

CREATE TABLE autoembed.schema_migrations (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: sources_id_seq; Type: SEQUENCE; Schema: autoembed; Owner: -
--

ALTER TABLE autoembed.sources ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME autoembed.sources_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: status; Type: VIEW; Schema: autoembed; Owner: -
--

CREATE VIEW autoembed.status AS
 SELECT source_status.source_id,
    source_status.source,
    source_status.watch,
    source_status.state,
    source_status.index,
    source_status.embedder,
    source_status.model,
    source_status.rows,
    source_status.embedded,
    source_status.pending,
    source_status.failed,
    source_status.unaccounted,
    source_status.oldest_pending_age,
    source_status.last_success_at
   FROM autoembed.source_status() source_status(source_id, source, watch, state, index, embedder, model, rows, embedded, pending, failed, unaccounted, oldest_pending_age, last_success_at);


--
-- Name: VIEW status; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON VIEW autoembed.status IS 'Per watch of a table (its name in `watch`): its state, its vector index''s state, rows, embedded, pending jobs, failures, unaccounted rows, oldest pending age, last success.';


--
-- Name: claims claims_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (source_id, pk);


--
-- Name: drain_targets drain_targets_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.drain_targets
    ADD CONSTRAINT drain_targets_pkey PRIMARY KEY (name);


--
-- Name: failures failures_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.failures
    ADD CONSTRAINT failures_pkey PRIMARY KEY (source_id, pk);


--
-- Name: row_state row_state_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.row_state
    ADD CONSTRAINT row_state_pkey PRIMARY KEY (source_id, pk);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (name);


--
-- Name: sources sources_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.sources
    ADD CONSTRAINT sources_pkey PRIMARY KEY (id);


--
-- Name: sources sources_source_name_key; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.sources
    ADD CONSTRAINT sources_source_name_key UNIQUE (source, name);


--
-- Name: claims claims_source_id_fkey; Type: FK CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.claims
    ADD CONSTRAINT claims_source_id_fkey FOREIGN KEY (source_id) REFERENCES autoembed.sources(id) ON DELETE CASCADE;


--
-- Name: failures failures_source_id_fkey; Type: FK CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.failures
    ADD CONSTRAINT failures_source_id_fkey FOREIGN KEY (source_id) REFERENCES autoembed.sources(id) ON DELETE CASCADE;


--
-- Name: row_state row_state_source_id_fkey; Type: FK CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.row_state
    ADD CONSTRAINT row_state_source_id_fkey FOREIGN KEY (source_id) REFERENCES autoembed.sources(id) ON DELETE CASCADE;


--
-- Name: SCHEMA autoembed; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA autoembed TO autoembed_worker;
GRANT USAGE ON SCHEMA autoembed TO autoembed_search;


--
-- Name: FUNCTION chunks_of(source regclass, watch text); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.chunks_of(source regclass, watch text) TO autoembed_search;


--
-- Name: FUNCTION claim_rows(source_id integer, pks text[], seconds integer); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.claim_rows(source_id integer, pks text[], seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.claim_rows(source_id integer, pks text[], seconds integer) TO autoembed_worker;


--
-- Name: TABLE sources; Type: ACL; Schema: autoembed; Owner: -
--

GRANT SELECT ON TABLE autoembed.sources TO autoembed_worker;
GRANT SELECT ON TABLE autoembed.sources TO autoembed_search;


--
-- Name: FUNCTION enqueue(source_id integer, pks text[], attempt integer, delay_seconds integer); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.enqueue(source_id integer, pks text[], attempt integer, delay_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.enqueue(source_id integer, pks text[], attempt integer, delay_seconds integer) TO autoembed_worker;


--
-- Name: FUNCTION enqueue_range(source_id integer, first_pk bigint, last_pk bigint); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.enqueue_range(source_id integer, first_pk bigint, last_pk bigint) FROM PUBLIC;


--
-- Name: FUNCTION index_build_statements(source_id integer); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.index_build_statements(source_id integer) TO autoembed_worker;


--
-- Name: FUNCTION indexes_due(retry_after interval, watch_ids integer[]); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.indexes_due(retry_after interval, watch_ids integer[]) TO autoembed_worker;


--
-- Name: FUNCTION load_chunk_vectors(source_id integer, pks text[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.load_chunk_vectors(source_id integer, pks text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.load_chunk_vectors(source_id integer, pks text[]) TO autoembed_worker;


--
-- Name: FUNCTION load_content(source_id integer, pks text[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.load_content(source_id integer, pks text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.load_content(source_id integer, pks text[]) TO autoembed_worker;


--
-- Name: FUNCTION lock_index_build(source_id integer); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.lock_index_build(source_id integer) TO autoembed_worker;


--
-- Name: FUNCTION read_jobs(max_rows integer, vt_seconds integer, only_sources integer[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer, only_sources integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer, only_sources integer[]) TO autoembed_worker;


--
-- Name: FUNCTION record_failures(source_id integer, pks text[], hashes uuid[], error_classes text[], error_messages text[], attempts integer[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.record_failures(source_id integer, pks text[], hashes uuid[], error_classes text[], error_messages text[], attempts integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.record_failures(source_id integer, pks text[], hashes uuid[], error_classes text[], error_messages text[], attempts integer[]) TO autoembed_worker;


--
-- Name: FUNCTION release_claims(source_id integer, pks text[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.release_claims(source_id integer, pks text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.release_claims(source_id integer, pks text[]) TO autoembed_worker;


--
-- Name: FUNCTION release_jobs(msg_ids bigint[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.release_jobs(msg_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.release_jobs(msg_ids bigint[]) TO autoembed_worker;


--
-- Name: FUNCTION report_index_problem(source_id integer, problem text); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.report_index_problem(source_id integer, problem text) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.report_index_problem(source_id integer, problem text) TO autoembed_worker;


--
-- Name: FUNCTION report_problem(source_id integer, problem text); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.report_problem(source_id integer, problem text) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.report_problem(source_id integer, problem text) TO autoembed_worker;


--
-- Name: FUNCTION request_drain(target text); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.request_drain(target text) FROM PUBLIC;


--
-- Name: FUNCTION schedule_drain_requests(target text, every text); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.schedule_drain_requests(target text, every text) FROM PUBLIC;


--
-- Name: FUNCTION search(source regclass, query public.vector, k integer, chunks_per_row integer, watch text); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.search(source regclass, query public.vector, k integer, chunks_per_row integer, watch text) TO autoembed_search;


--
-- Name: FUNCTION search_settings(source regclass, watch text); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.search_settings(source regclass, watch text) TO autoembed_search;


--
-- Name: FUNCTION set_drain_target(name text, url text, token text, timeout_ms integer); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.set_drain_target(name text, url text, token text, timeout_ms integer) FROM PUBLIC;


--
-- Name: FUNCTION store_drain_token(name text, token text); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.store_drain_token(name text, token text) FROM PUBLIC;


--
-- Name: FUNCTION unlock_index_build(source_id integer); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.unlock_index_build(source_id integer) TO autoembed_worker;


--
-- Name: FUNCTION write_chunks(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[], chunk_pks text[], chunk_hashes uuid[], occurrences integer[], positions integer[], starts integer[], ends integer[], texts text[], chunk_vectors public.vector[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.write_chunks(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[], chunk_pks text[], chunk_hashes uuid[], occurrences integer[], positions integer[], starts integer[], ends integer[], texts text[], chunk_vectors public.vector[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.write_chunks(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[], chunk_pks text[], chunk_hashes uuid[], occurrences integer[], positions integer[], starts integer[], ends integer[], texts text[], chunk_vectors public.vector[]) TO autoembed_worker;


--
-- Name: FUNCTION write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]) TO autoembed_worker;


--
-- Name: TABLE schema_migrations; Type: ACL; Schema: autoembed; Owner: -
--

GRANT SELECT ON TABLE autoembed.schema_migrations TO autoembed_worker;


--
-- PostgreSQL database dump complete
--


