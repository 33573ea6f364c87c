-- autoembed 20261123000003_http_drain.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
-- It runs once, whichever applies it first (`supabase db push` or `autoembed migrate`): both
-- record it in autoembed.schema_migrations.
create schema if not exists autoembed;
create table if not exists autoembed.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);
select pg_advisory_xact_lock(hashtext('autoembed.migrate'));
do $autoembed_guard$
declare
    done_names constant text[] := array['20261123000003_http_drain.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261123000003_http_drain.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- pg_net + pg_cron: the database wakes an HTTP-triggered worker by itself (serverless deployments,
-- e.g. a container that runs `autoembed worker --drain` per request). Supabase ships both extensions.
-- Without pg_net these functions exist but refuse with a clear error; nothing else depends on them.

-- Validate a pg_cron schedule for this server: 'N seconds' needs pg_cron 1.5+ (Supabase ships 1.6);
-- pg_cron 1.4 (Debian 12) schedules by the minute only.
create function autoembed.drain_schedule(every text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
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
$$;

-- Both drain functions need pg_net and an http(s) URL; `caller` names the function in the error.
create function autoembed.check_drain_target(caller text, url text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
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

-- POST {queue, visible_jobs} to `url` when jobs are waiting; returns pg_net's request id (NULL: none waiting).
create function autoembed.request_drain(url text, headers jsonb default '{}', timeout_ms int default 5000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
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
$$;

create function autoembed.schedule_drain_requests(url text, every text default '10 seconds', headers jsonb default '{}')
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    schedule text := autoembed.drain_schedule(every);
begin
    perform autoembed.check_drain_target('autoembed.schedule_drain_requests', url);
    return cron.schedule('autoembed-drain-requests', schedule,
                         format('select autoembed.request_drain(%L, %L::jsonb)', url, coalesce(headers, '{}')));
end
$$;
comment on function autoembed.schedule_drain_requests is 'Every `every` (''10 seconds'' on pg_cron 1.5+), POST to `url` when embedding jobs wait (needs pg_net and pg_cron).';

create function autoembed.unschedule_drain_requests()
returns boolean
language plpgsql  -- late-bound: the cron schema may not exist
set search_path = pg_catalog, pg_temp
as $$
begin
    return cron.unschedule('autoembed-drain-requests');
end
$$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261123000003_http_drain.sql', 'b7a642371e42b1b2b52f388d390b1ddfb19671d208e4f2e506ae37d350cca388');
end
$autoembed_guard$;
