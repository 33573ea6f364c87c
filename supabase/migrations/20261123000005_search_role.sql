-- autoembed 20261123000005_search_role.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261123000005_search_role.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261123000005_search_role.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- autoembed_search: what an application role needs to call autoembed.search, and nothing more.
--   grant autoembed_search to my_app_role;        -- on Supabase: to authenticated (and anon, if wanted)
-- search runs as its caller, so the caller also needs SELECT on the watched table, and RLS applies.
do $$
begin
    if not exists (select from pg_roles where rolname = 'autoembed_search') then
        create role autoembed_search nologin;
    end if;
end
$$;
comment on role autoembed_search is 'Grant to application roles that call autoembed.search (they also need SELECT on the watched tables; RLS applies).';

grant usage on schema autoembed to autoembed_search;
grant select on autoembed.sources to autoembed_search;  -- search reads the registration of its table
grant execute on function autoembed.search(regclass, vector, int) to autoembed_search;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261123000005_search_role.sql', 'e557a8a85030885bca7a79993e5bd941b681bd1dd437a00cf26f5274980afa56');
end
$autoembed_guard$;
