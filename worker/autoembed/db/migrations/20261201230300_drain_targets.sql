-- Drain targets: where pg_cron + pg_net POST drain requests, and with which bearer token. Before,
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
