-- The login the compose stack's worker connects as (docker-compose.yml, service `worker-login`):
-- granted autoembed_worker and nothing else, so the worker holds the queue and the worker-facing
-- functions only (README: Roles). Runs after `autoembed migrate` (which creates autoembed_worker),
-- as the database owner, with the password as a psql variable; running it again only sets the
-- password again:
--   psql -v ON_ERROR_STOP=1 -v password="$AUTOEMBED_WORKER_PASSWORD" -f deploy/compose/worker_login.sql
select format('create role autoembed_embedder login in role autoembed_worker password %L', :'password')
where not exists (select from pg_roles where rolname = 'autoembed_embedder')
\gexec
select format('alter role autoembed_embedder password %L', :'password')
\gexec
