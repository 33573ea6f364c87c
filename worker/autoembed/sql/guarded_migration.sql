-- autoembed {name}: generated from the package's db/migrations by `autoembed supabase`; do not edit.
-- It runs once, whichever applies it first (`supabase db push` or `autoembed migrate`): both
-- record it in autoembed.schema_migrations.
{ledger}
select pg_advisory_xact_lock(hashtext('autoembed.migrate'));
do $autoembed_guard$
declare
    done_names constant text[] := array[{done_names}]::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: {name} is applied already';
        return;
    end if;
    execute {quoted_text};
    insert into autoembed.schema_migrations (name, checksum) values {records};
end
$autoembed_guard$;
