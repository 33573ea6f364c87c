-- autoembed_search: what an application role needs to call autoembed.search, and nothing more.
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
