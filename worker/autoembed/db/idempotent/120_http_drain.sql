-- pg_net + pg_cron: the database wakes an HTTP-triggered worker.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Push mode: pg_cron runs autoembed.request_drain(target) on a schedule, which POSTs to an
-- `autoembed serve` (a container that may scale to zero) when jobs wait; the server drains the queue.
-- Supabase ships both extensions. Where pg_net is absent, or its worker serves another database,
-- these functions refuse with a clear error; nothing else depends on them.

-- Validate a pg_cron schedule for this server: 'N seconds' needs pg_cron 1.5+ (Supabase ships 1.6);
-- pg_cron 1.4 (Debian 12) schedules by the minute only.
create or replace function autoembed.drain_schedule(every text)
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

-- Where a drain request can be sent from here: pg_net's worker must serve this database, and a
-- target's URL must be http(s). `caller` names the function in the error.
create or replace function autoembed.check_drain_target(caller text, url text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
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

-- Where Supabase Vault is there: vault.decrypted_secrets, vault.create_secret and vault.update_secret
-- (called with their first arguments only: new_secret, new_name, new_description / secret_id, new_secret).
create or replace function autoembed.vault_available()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select to_regclass('vault.decrypted_secrets') is not null
       and (select count(distinct p.proname) = 2 from pg_proc p
            where p.pronamespace = to_regnamespace('vault') and p.proname in ('create_secret', 'update_secret'))
$$;

-- Keep `token` for target `name`: in Vault where it is (a secret named autoembed_drain_<name>, its
-- id in drain_targets.vault_secret_id), else in drain_targets.token.
-- Optional extensions (vault, net, cron) are named at run time (EXECUTE format('%I'...)), so that
-- neither PL/pgSQL nor plpgsql_check (`supabase db lint`) resolves them where they are absent.
create or replace function autoembed.store_drain_token(name text, token text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
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
$$;
revoke execute on function autoembed.store_drain_token(text, text) from public;

-- Register (or change) a drain target: the URL of an `autoembed serve` and its AUTOEMBED_DRAIN_TOKEN.
create or replace function autoembed.set_drain_target(name text, url text, token text, timeout_ms int default 5000)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
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
comment on function autoembed.set_drain_target is 'Register where drain requests go: an `autoembed serve` URL (…/drain) and its bearer token (kept in Vault where there is one).';
revoke execute on function autoembed.set_drain_target(text, text, text, int) from public;

-- POST {queue, visible_jobs} with the target's bearer token when jobs are waiting; returns pg_net's
-- request id (NULL: none waiting). SECURITY DEFINER: it reads the token, which its caller (a pg_cron
-- job whose command names only the target) never sees.
create or replace function autoembed.request_drain(target text default 'default')
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
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
$$;
comment on function autoembed.request_drain is 'POST a drain request to a drain target when embedding jobs wait (needs pg_net sending from this database).';
revoke execute on function autoembed.request_drain(text) from public;

-- Schedule autoembed.request_drain(target) with pg_cron: the job's command names the target only.
create or replace function autoembed.schedule_drain_requests(target text default 'default', every text default '10 seconds')
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
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
$$;
comment on function autoembed.schedule_drain_requests is 'Every `every` (''10 seconds'' on pg_cron 1.5+), POST to a drain target when embedding jobs wait (needs pg_net and pg_cron serving this database).';
revoke execute on function autoembed.schedule_drain_requests(text, text) from public;

-- Stop the drain requests scheduled above.
create or replace function autoembed.unschedule_drain_requests()
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    done boolean;
begin
    execute format('select %I.unschedule($1)', 'cron') into done using 'autoembed-drain-requests';
    return done;
end
$$;

-- Where Vault is there, no token stays in drain_targets (a target registered before it was).
do $$
declare
    target record;
begin
    if autoembed.vault_available() then
        for target in select name, token from autoembed.drain_targets where token is not null loop
            perform autoembed.store_drain_token(target.name, target.token);
        end loop;
    end if;
end
$$;
