-- The two logins the manifests in deploy/k8s connect as, each holding only what it needs. Run it
-- once, as the database owner, after `autoembed migrate`:
--   psql "$OWNER_DATABASE_URL" -f deploy/k8s/database-roles.sql
-- then give both a password (psql: \password autoembed_embedder, \password autoembed_keda) and put
-- them in secret.yaml. tests/unit/test_deploy_k8s.py runs this file and the manifests' SQL as these logins.

-- The workers (secret autoembed-worker): the queue and the worker-facing functions, through the
-- role autoembed's migrations made for this (README: Roles); no privilege on the tables they embed.
create role autoembed_embedder login;
grant autoembed_worker to autoembed_embedder;

-- KEDA's PostgreSQL scaler (secret autoembed-keda) runs `select autoembed.queue_rows()` and nothing
-- else: it reads the job queue's messages (table ids and keys, never content) and may touch nothing more.
create role autoembed_keda login connection limit 5;
alter role autoembed_keda set statement_timeout = '5s';
grant usage on schema autoembed, pgmq to autoembed_keda;
grant select on pgmq.q_autoembed_jobs to autoembed_keda;
