-- Privileges outside the autoembed schema: what autoembed_worker and autoembed_search need on
-- pgmq's objects and on pgvector's schema, granted by whoever may grant them.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- A GRANT by a role that does not hold the privilege with grant option (one that does not own
-- the object) grants nothing and only warns: on Supabase, `grant usage on schema pgmq` run by
-- `postgres` where another role owns the schema. The worker then fails at run time
-- (`permission denied for schema pgmq`). So the migration checks what is in effect instead.

-- Each privilege autoembed's roles need and do not hold: the GRANT that gives it, the role that
-- may run it (the object's owner), and whether the current role may run it itself.
create or replace function autoembed.missing_grants()
returns table (statement text, run_as name, grantable boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    with schemas (role_name, schema_oid) as (
        select 'autoembed_worker'::name, 'pgmq'::regnamespace::oid
        union all
        select r.role_name, e.extnamespace
        from pg_extension e cross join (values ('autoembed_worker'::name), ('autoembed_search'::name)) r (role_name)
        where e.extname = 'vector'
    ), tables (role_name, table_oid, privilege) as (
        select 'autoembed_worker'::name, c.oid, p.privilege
        from pg_class c
        cross join lateral unnest(case c.relname when 'q_autoembed_jobs' then array['select', 'update', 'delete']
                                                 else array['select', 'insert'] end) p (privilege)
        where c.relnamespace = 'pgmq'::regnamespace and c.relname in ('q_autoembed_jobs', 'a_autoembed_jobs')
    ), functions (role_name, function_oid) as (
        select 'autoembed_worker'::name, p.oid from pg_proc p
        where p.pronamespace = 'pgmq'::regnamespace
          and p.proname in ('read', 'delete', 'archive', 'set_vt', 'format_table_name')
    )
    select format('grant usage on schema %I to %I', n.nspname, s.role_name), n.nspowner::regrole::name,
           has_schema_privilege(current_user, n.oid, 'usage with grant option')
    from schemas s join pg_namespace n on n.oid = s.schema_oid
    where not has_schema_privilege(s.role_name, n.oid, 'usage')
    union all
    select format('grant %s on table %s to %I', t.privilege, c.oid::regclass, t.role_name), c.relowner::regrole::name,
           has_table_privilege(current_user, c.oid, t.privilege || ' with grant option')
    from tables t join pg_class c on c.oid = t.table_oid
    where not has_table_privilege(t.role_name, c.oid, t.privilege)
    union all
    select format('grant execute on function %s to %I', p.oid::regprocedure, f.role_name), p.proowner::regrole::name,
           has_function_privilege(current_user, p.oid, 'execute with grant option')
    from functions f join pg_proc p on p.oid = f.function_oid
    where not has_function_privilege(f.role_name, p.oid, 'execute')
    order by 1
$$;
comment on function autoembed.missing_grants is 'Privileges autoembed_worker and autoembed_search need on pgmq and pgvector''s schema and do not hold: the GRANT, and who may run it.';

-- Grant what the migrating role may grant; refuse to finish while anything is still missing.
do $$
declare
    missing record;
    still text;
begin
    for missing in select * from autoembed.missing_grants() where grantable loop
        execute missing.statement;
    end loop;
    select string_agg(format('%s;  -- as %I', m.statement, m.run_as), E'\n') into still from autoembed.missing_grants() m;
    if still is not null then
        raise exception 'autoembed: % may not grant what autoembed''s roles need (a GRANT by a role without the grant option grants nothing):%', current_user, E'\n' || still
            using hint = 'Run each statement as the role named beside it (the owner of the object, or a superuser), then migrate again.';
    end if;
end
$$;
