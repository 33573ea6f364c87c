-- autoembed 20261201230400_source_problems_and_load_errors.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201230400_source_problems_and_load_errors.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230400_source_problems_and_load_errors.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- What the worker found wrong with a source, and why a row could not be loaded.
--
-- autoembed.sources.problem: set by the worker (autoembed.report_problem) when it cannot serve a
-- source (a model that does not load, a model whose dimension is not the column's, content that
-- cannot be evaluated, an embedder that stopped answering); cleared by the next successful write.
-- autoembed.status shows it as the source's state until then, or until the source is watched again.
alter table autoembed.sources
    add column problem text,
    add column problem_at timestamptz;
comment on column autoembed.sources.problem is 'What the worker last found wrong with this source (shown as its state by autoembed.status); NULL once a write succeeds.';
comment on column autoembed.sources.problem_at is 'When the worker reported `problem`.';

-- autoembed.load_content tells why a row has no content: the key cannot be one of the table's (a
-- poison job), the content function raised for this row, or the content cannot be evaluated at all.
alter type autoembed.loaded_row add attribute error_kind text;

-- autoembed.status gains the rows that are neither embedded, pending nor failed: a new return type,
-- so the view and its function go here and db/idempotent/100_status.sql creates the new ones.
drop view if exists autoembed.status;
drop function if exists autoembed.source_status();
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230400_source_problems_and_load_errors.sql', '69b2062891ee7474e7a9a0185252408b59204ac311cd6df61a247b728a66ef4f');
end
$autoembed_guard$;
