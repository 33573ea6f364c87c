-- autoembed 20261201230100_content_function_by_name.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201230100_content_function_by_name.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201230100_content_function_by_name.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed.sources.content_function names the content function as text, `schema.name` (quoted
-- as format('%I.%I') quotes), instead of a regprocedure: pg_upgrade, which Supabase's major-version
-- upgrades run, refuses tables with regprocedure columns, and a function's oid survives neither
-- pg_upgrade nor a dump and restore. autoembed.content_expr finds the function at each use by that
-- name and the source table's row type (the one argument it takes), so renaming the table keeps
-- it; a renamed or dropped function leaves the source broken, with that said in autoembed.status.
-- A registration whose function was already dropped keeps the old oid's digits as a one-part
-- name, which names no function.
-- resolve_content returned the regprocedure: a new OUT type, so the old function goes here and
-- db/idempotent/020_watch.sql creates the new one.
drop function if exists autoembed.resolve_content(regclass, text);
alter table autoembed.sources alter column content_function type text using
    case when content_function is null then null
         when (pg_identify_object_as_address('pg_proc'::regclass, content_function, 0)).object_names is null
         then format('%I', content_function::oid::text)
         else format('%I.%I', variadic (pg_identify_object_as_address('pg_proc'::regclass, content_function, 0)).object_names)
    end;
comment on column autoembed.sources.content_function is 'The content function as schema.name (it takes the table''s row and returns text), or NULL where content_column is set.';
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201230100_content_function_by_name.sql', '5633446fe0065331046cf217099b241e42a6110c779745521468e4ede032bad8');
end
$autoembed_guard$;
