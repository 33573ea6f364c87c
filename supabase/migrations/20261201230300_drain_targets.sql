-- autoembed 20261201230300_drain_targets.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201230300_drain_targets.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230300_drain_targets.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- Drain targets: where pg_cron + pg_net POST drain requests, and with which bearer token. Before,
-- autoembed.schedule_drain_requests(url, every, headers) wrote the URL and the headers (the token)
-- into cron.job.command, and pg_cron copied them into every cron.job_run_details row. Now the job
-- names a target, `select autoembed.request_drain('default')`, and the token is kept in Supabase
-- Vault where the database has it, else in this table, which only its owner may read
-- (db/idempotent/120_http_drain.sql: set_drain_target, request_drain).
create table autoembed.drain_targets (
    name text primary key check (name ~ '^[a-z0-9_-]{1,63}$'),
    url text not null check (url ~ '^https?://'),
    token text,                 -- the bearer token where there is no Vault (moved there once there is)
    vault_secret_id uuid,       -- where there is Vault: vault.secrets' id of the token
    timeout_ms int not null default 5000 check (timeout_ms > 0),
    updated_at timestamptz not null default now()
);
revoke all on autoembed.drain_targets from public;
comment on table autoembed.drain_targets is 'Where pg_cron + pg_net send drain requests (autoembed.set_drain_target); readable by its owner only.';

-- The old signatures go; their current replacements take a target's name.
drop function if exists autoembed.request_drain(text, jsonb, int);
drop function if exists autoembed.schedule_drain_requests(text, text, jsonb);

-- A job scheduled by the old schedule_drain_requests becomes the target `default`, scheduled anew
-- with a command that names it (its token moves to Vault where there is one: 120_http_drain.sql).
-- A command of another shape is only unscheduled: it would call a function that is gone.
do $convert$
declare
    job record;
    literals text[];
    target_url text;
    headers jsonb;
begin
    if to_regclass('cron.job') is null then
        return;
    end if;
    for job in execute 'select jobid, schedule, command from cron.job where jobname = ''autoembed-drain-requests''' loop
        literals := regexp_match(job.command, $re$^select autoembed\.request_drain\((E?'(?:[^'\\]|''|\\.)*'), (E?'(?:[^'\\]|''|\\.)*')::jsonb\)$$re$);
        execute 'select cron.unschedule($1)' using job.jobid;
        if literals is null then
            raise warning 'autoembed: unscheduled job % (autoembed-drain-requests), whose command it cannot read: '
                          'schedule it again with autoembed.set_drain_target() and autoembed.schedule_drain_requests()', job.jobid;
            continue;
        end if;
        execute format('select %s::text, %s::jsonb', literals[1], literals[2]) into target_url, headers;
        insert into autoembed.drain_targets (name, url, token)
        values ('default', target_url, nullif(regexp_replace(coalesce(headers ->> 'Authorization', ''), '^\s*bearer\s+', '', 'i'), ''))
        on conflict (name) do update set url = excluded.url, token = excluded.token, updated_at = now();
        execute 'select cron.schedule(''autoembed-drain-requests'', $1, $2)'
        using job.schedule, 'select autoembed.request_drain(''default'')';
    end loop;
end
$convert$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230300_drain_targets.sql', '1977c9a7714c66298b120c752b206b40c128d99e51acda7db4b45dafa06d44d8');
end
$autoembed_guard$;
