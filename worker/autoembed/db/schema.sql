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
	error text
);


--
-- Name: backfill(regclass, boolean, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.backfill(source regclass, only_missing boolean DEFAULT true, chunk_size integer DEFAULT 10000) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: FUNCTION backfill(source regclass, only_missing boolean, chunk_size integer); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.backfill(source regclass, only_missing boolean, chunk_size integer) IS 'Enqueue existing rows (by default only those without an embedding).';


--
-- Name: capabilities(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.capabilities() RETURNS TABLE(feature text, available boolean, detail text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION capabilities(); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.capabilities() IS 'Which optional extensions are present, and what is missing without them.';


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
    if url is null or url !~ '^https?://' then
        raise exception '%: url must start with http:// or https://, got %', caller, quote_nullable(url);
    end if;
end
$$;


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


--
-- Name: clear_embedding(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.clear_embedding() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    new := jsonb_populate_record(new, jsonb_build_object(tg_argv[0], null));
    return new;
end
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
    content_function regprocedure,
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
    CONSTRAINT sources_check CHECK (((content_column IS NULL) <> (content_function IS NULL))),
    CONSTRAINT sources_dimensions_check CHECK ((dimensions > 0)),
    CONSTRAINT sources_distance_check CHECK ((distance = ANY (ARRAY['cosine'::text, 'l2'::text, 'inner_product'::text]))),
    CONSTRAINT sources_max_attempts_check CHECK ((max_attempts >= 1)),
    CONSTRAINT sources_model_check CHECK ((model <> ''::text))
);


--
-- Name: TABLE sources; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON TABLE autoembed.sources IS 'Tables watched by autoembed: one row per autoembed.watch() call.';


--
-- Name: content_expr(autoembed.sources, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.content_expr(src autoembed.sources, alias text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: current_names(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.current_names(src autoembed.sources) RETURNS autoembed.sources
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
-- Name: drop_triggers(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.drop_triggers(source regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    trigger_name text;
begin
    foreach trigger_name in array array['autoembed_enqueue_insert', 'autoembed_mark_changed', 'autoembed_enqueue_update',
                                        'autoembed_forget_delete', 'autoembed_clear_embedding'] loop
        execute format('drop trigger if exists %I on %s', trigger_name, source);
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
    select array['local', 'openai', 'hashing']
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
-- Name: install_triggers(autoembed.sources); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.install_triggers(src autoembed.sources) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    content_changed text := format('%s is distinct from %s',
                                   autoembed.content_expr(src, 'old'), autoembed.content_expr(src, 'new'));
    key_changed text := format('old.%1$I is distinct from new.%1$I', src.pk_column);
begin
    perform autoembed.drop_triggers(src.source);
    execute format(
        'create trigger autoembed_enqueue_insert after insert on %s referencing new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_mark_changed after update on %s for each row
         when (%s or %s) execute function autoembed.mark_content_changed(%s)',
        src.source, content_changed, key_changed, src.id);
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
             when (%s) execute function autoembed.clear_embedding(%L)',
            src.source, content_changed, src.embedding_column);
    end if;
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
-- Name: job_pks(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_pks(message jsonb) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select k.pk
    from (select autoembed.job_range(message) as r) m,
         lateral (select g::text from generate_series(m.r[1], m.r[2]) g  -- no rows when r is null
                  union all
                  select jsonb_array_elements_text(case jsonb_typeof(message -> 'pks')
                                                       when 'array' then message -> 'pks'
                                                       else jsonb_build_array(message -> 'pk') end)
                  where m.r is null) k(pk)
$$;


--
-- Name: job_range(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_range(message jsonb) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    select case when message @? 'strict $.pk_range ? (@.size() == 2 && @[0].floor() == @[0] && @[1].floor() == @[1]
                                                      && @[0] <= @[1] && @[0] >= -9223372036854775808
                                                      && @[1] <= 9223372036854775807)'
                then array[(message #>> '{pk_range,0}')::numeric::bigint, (message #>> '{pk_range,1}')::numeric::bigint] end
$_$;


--
-- Name: job_size(jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.job_size(message jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select case when m.r is not null then least(m.r[2]::numeric - m.r[1] + 1, 2147483647)::int
                when jsonb_typeof(message -> 'pks') = 'array' then greatest(jsonb_array_length(message -> 'pks'), 1)
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
-- Name: load_content(integer, text[]); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.load_content(source_id integer, pks text[]) RETURNS SETOF autoembed.loaded_row
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: mark_content_changed(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.mark_content_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
    perform pg_catalog.set_config('autoembed.changed_' || tg_argv[0], 'y', true);
    return null;
end
$$;


--
-- Name: on_write(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.on_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    source_id constant int := tg_argv[0]::int;
    changed_flag constant text := 'autoembed.changed_' || tg_argv[0];
    src autoembed.sources;
    pk_name name;
    integer_keys boolean;
    first_pk bigint;
    last_pk bigint;
    key_count bigint;
    pks text[];
begin
    if tg_op = 'INSERT' then
        select a.attname, a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
        into pk_name, integer_keys
        from autoembed.sources s join pg_attribute a on a.attrelid = s.source and a.attnum = s.pk_attnum
        where s.id = source_id and not a.attisdropped;
        if pk_name is null then
            raise warning 'autoembed: source % is broken (its key column was dropped): insert not handled', source_id;
            return null;
        end if;
        if integer_keys then  -- consecutive keys (a bulk INSERT into an identity table): named by their ends
            execute format('select min(n.%1$I), max(n.%1$I), count(*) from autoembed_new n', pk_name)
            into first_pk, last_pk, key_count;
            if last_pk::numeric - first_pk + 1 = key_count then
                perform autoembed.enqueue_range(source_id, first_pk, last_pk);
                return null;
            end if;
        end if;
        execute format('select array_agg(n.%I::text) from autoembed_new n', pk_name) into pks;
        perform autoembed.enqueue(source_id, pks);
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if coalesce(current_setting(changed_flag, true), '') = '' then
            return null;  -- no row's content or key changed
        end if;
        perform set_config(changed_flag, '', true);
    end if;
    begin
        select * into src from autoembed.sources s where s.id = source_id;
        src := autoembed.current_names(src);
        if tg_op = 'UPDATE' then
            execute format(
                'select array_agg(n.%1$I::text)
                 from autoembed_new n left join autoembed_old o on o.%1$I = n.%1$I
                 where o.%1$I is null or %2$s is distinct from %3$s',
                src.pk_column, autoembed.content_expr(src, 'n'), autoembed.content_expr(src, 'o'))
            into pks;
            perform autoembed.enqueue(source_id, pks);
            execute format(  -- keys that no row has any more: their rows took new keys
                'select array_agg(o.%1$I::text)
                 from autoembed_old o left join autoembed_new n on n.%1$I = o.%1$I where n.%1$I is null',
                src.pk_column)
            into pks;
        else
            execute format('select array_agg(o.%I::text) from autoembed_old o', src.pk_column) into pks;
        end if;
        if pks is not null then  -- forget what was known about keys that are gone
            delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(pks);
            delete from autoembed.failures f where f.source_id = src.id and f.pk = any(pks);
        end if;
    exception when undefined_column or undefined_table or undefined_function then
        raise warning 'autoembed: source % is broken (%): % not handled', source_id, sqlerrm, lower(tg_op);
    end;
    return null;
end
$_$;


--
-- Name: queue_rows(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.queue_rows() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    select coalesce(sum(autoembed.job_size(q.message)), 0)::bigint from pgmq.q_autoembed_jobs q
$$;


--
-- Name: read_jobs(integer, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer) RETURNS TABLE(msg_id bigint, read_ct integer, message jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    visible cursor for
        select q.msg_id, autoembed.job_size(q.message) as n
        from pgmq.q_autoembed_jobs q
        where q.vt <= clock_timestamp()
        order by q.msg_id
        for update skip locked;
    job record;
    ids bigint[] := '{}';
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
        execute format('select count(*) from (select from %1$s t where t.%2$I = any($1::%3$s[]) for key share of t) l',
                       src.source, src.pk_column, pk_type)
        using pks;
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
$_$;


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
-- Name: request_drain(text, jsonb, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.request_drain(url text, headers jsonb DEFAULT '{}'::jsonb, timeout_ms integer DEFAULT 5000) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
declare
    visible bigint;
    request_id bigint;
begin
    perform autoembed.check_drain_target('autoembed.request_drain', url);
    select count(*) into visible from pgmq.q_autoembed_jobs where vt <= clock_timestamp();
    if visible = 0 then
        return null;
    end if;
    execute 'select net.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := $4)'
    into request_id
    using url, jsonb_build_object('queue', 'autoembed_jobs', 'visible_jobs', visible),
          '{"Content-Type": "application/json"}'::jsonb || coalesce(headers, '{}'), timeout_ms;
    return request_id;
end
$_$;


--
-- Name: resolve_content(regclass, text); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.resolve_content(source regclass, content text, OUT content_column name, OUT content_function regprocedure) RETURNS record
    LANGUAGE plpgsql STABLE
    AS $$
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


--
-- Name: retry_failures(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.retry_failures(source regclass DEFAULT NULL::regclass) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION retry_failures(source regclass); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.retry_failures(source regclass) IS 'Re-enqueue failed rows (of one table, or all) and clear their failure records.';


--
-- Name: schedule_drain_requests(text, text, jsonb); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.schedule_drain_requests(url text, every text DEFAULT '10 seconds'::text, headers jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    schedule text := autoembed.drain_schedule(every);
begin
    perform autoembed.check_drain_target('autoembed.schedule_drain_requests', url);
    return cron.schedule('autoembed-drain-requests', schedule,
                         format('select autoembed.request_drain(%L, %L::jsonb)', url, coalesce(headers, '{}')));
end
$$;


--
-- Name: FUNCTION schedule_drain_requests(url text, every text, headers jsonb); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.schedule_drain_requests(url text, every text, headers jsonb) IS 'Every `every` (''10 seconds'' on pg_cron 1.5+), POST to `url` when embedding jobs wait (needs pg_net and pg_cron).';


--
-- Name: search(regclass, public.vector, integer); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.search(source regclass, query public.vector, k integer DEFAULT 5) RETURNS TABLE(pk text, content text, distance double precision)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;


--
-- Name: FUNCTION search(source regclass, query public.vector, k integer); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.search(source regclass, query public.vector, k integer) IS 'The k rows nearest to a query vector, by the table''s distance. Respects RLS.';


--
-- Name: source_by_table(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_by_table(source regclass) RETURNS autoembed.sources
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: source_status(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.source_status() RETURNS TABLE(source_id integer, source text, state text, embedder text, model text, rows bigint, embedded bigint, pending bigint, failed bigint, oldest_pending_age interval, last_success_at timestamp with time zone)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    src autoembed.sources;
begin
    for src in select * from autoembed.sources order by id loop
        source_id := src.id;
        embedder := src.embedder;
        model := src.model;
        last_success_at := src.last_success_at;
        select count(distinct j.pk), now() - min(j.enqueued_at) into pending, oldest_pending_age
        from autoembed.jobs j where j.source_id = src.id;
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
-- Name: unschedule_drain_requests(); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unschedule_drain_requests() RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
    return cron.unschedule('autoembed-drain-requests');
end
$$;


--
-- Name: unwatch(regclass); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.unwatch(source regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
    src autoembed.sources := autoembed.source_by_table(source);
begin
    perform autoembed.drop_triggers(src.source);
    delete from pgmq.q_autoembed_jobs where message ->> 'source_id' = src.id::text;
    delete from autoembed.sources where id = src.id;
end
$$;


--
-- Name: FUNCTION unwatch(source regclass); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.unwatch(source regclass) IS 'Stop watching a table; stored vectors stay, pending jobs are dropped.';


--
-- Name: watch(regclass, text, name, text, text, text, integer, boolean, boolean); Type: FUNCTION; Schema: autoembed; Owner: -
--

CREATE FUNCTION autoembed.watch(source regclass, content text, embedding_column name DEFAULT 'embedding'::name, embedder text DEFAULT 'local'::text, model text DEFAULT 'sentence-transformers/all-MiniLM-L6-v2'::text, distance text DEFAULT 'cosine'::text, max_attempts integer DEFAULT 5, clear_on_change boolean DEFAULT true, backfill boolean DEFAULT true) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: FUNCTION watch(source regclass, content text, embedding_column name, embedder text, model text, distance text, max_attempts integer, clear_on_change boolean, backfill boolean); Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON FUNCTION autoembed.watch(source regclass, content text, embedding_column name, embedder text, model text, distance text, max_attempts integer, clear_on_change boolean, backfill boolean) IS 'Watch a table: every insert or content change enqueues an embedding job.';


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
    execute format(
        'update %1$s t set %2$I = b.vec from unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
         where t.%3$I = b.pk::%4$s and md5(%5$s)::uuid is not distinct from b.hash
           and t.%2$I::real[] is distinct from b.vec::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
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
                        and t.%2$I::real[] is not distinct from b.vec::real[]
                      for key share of t)',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
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
    update autoembed.sources s set last_success_at = now()
    where s.id = src.id and (s.last_success_at is null or s.last_success_at < now() - interval '1 second');
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
-- Name: jobs; Type: VIEW; Schema: autoembed; Owner: -
--

CREATE VIEW autoembed.jobs AS
 SELECT q.msg_id,
        CASE
            WHEN (jsonb_typeof((q.message -> 'source_id'::text)) = 'number'::text) THEN (LEAST(floor(((q.message ->> 'source_id'::text))::numeric), (2147483647)::numeric))::integer
            ELSE NULL::integer
        END AS source_id,
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
    source_status.state,
    source_status.embedder,
    source_status.model,
    source_status.rows,
    source_status.embedded,
    source_status.pending,
    source_status.failed,
    source_status.oldest_pending_age,
    source_status.last_success_at
   FROM autoembed.source_status() source_status(source_id, source, state, embedder, model, rows, embedded, pending, failed, oldest_pending_age, last_success_at);


--
-- Name: VIEW status; Type: COMMENT; Schema: autoembed; Owner: -
--

COMMENT ON VIEW autoembed.status IS 'Per watched table: rows, embedded, pending jobs, failures, oldest pending age, last success.';


--
-- Name: claims claims_pkey; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (source_id, pk);


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
-- Name: sources sources_source_key; Type: CONSTRAINT; Schema: autoembed; Owner: -
--

ALTER TABLE ONLY autoembed.sources
    ADD CONSTRAINT sources_source_key UNIQUE (source);


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
-- Name: FUNCTION load_content(source_id integer, pks text[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.load_content(source_id integer, pks text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.load_content(source_id integer, pks text[]) TO autoembed_worker;


--
-- Name: FUNCTION read_jobs(max_rows integer, vt_seconds integer); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.read_jobs(max_rows integer, vt_seconds integer) TO autoembed_worker;


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
-- Name: FUNCTION search(source regclass, query public.vector, k integer); Type: ACL; Schema: autoembed; Owner: -
--

GRANT ALL ON FUNCTION autoembed.search(source regclass, query public.vector, k integer) TO autoembed_search;


--
-- Name: FUNCTION write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]); Type: ACL; Schema: autoembed; Owner: -
--

REVOKE ALL ON FUNCTION autoembed.write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]) FROM PUBLIC;
GRANT ALL ON FUNCTION autoembed.write_embeddings(source_id integer, embedder text, model text, pks text[], hashes uuid[], vectors public.vector[]) TO autoembed_worker;


--
-- PostgreSQL database dump complete
--


