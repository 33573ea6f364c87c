-- autoembed 20261201233000_named_watches.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261201233000_named_watches.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261201233000_named_watches.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- Several watches per table, each named. A watch's name is unique per table (a registration kept
-- from before is named after its embedding column, as a new watch is by default), so
-- autoembed.sources holds one row per watch instead of one per table. The functions that take a
-- table take the watch's name too, status has a `watch` column and the worker reads the jobs of
-- some sources only: create or replace can change neither arguments nor returned columns, so the
-- old signatures go here and db/idempotent creates the new ones.
alter table autoembed.sources add column name text;
update autoembed.sources set name = embedding_column;
alter table autoembed.sources
    alter column name set not null,
    add constraint sources_name_check check (btrim(name) <> ''),
    drop constraint sources_source_key,
    add constraint sources_source_name_key unique (source, name);
comment on column autoembed.sources.name is 'The watch''s name, unique per table (by default its embedding column''s).';

drop view if exists autoembed.status;
do $$
declare
    old regprocedure;
begin
    for old in
        select p.oid::regprocedure from pg_proc p
        join (values ('watch', 15), ('backfill', 3), ('retry_failures', 1), ('source_by_table', 1),
                     ('search', 4), ('search_settings', 1), ('chunks_of', 1), ('read_jobs', 2),
                     ('installed_triggers', 1), ('drop_triggers', 1), ('drop_chunk_triggers', 1),
                     ('source_status', 0)) o (proname, pronargs)
          on o.proname = p.proname and o.pronargs = p.pronargs
        where p.pronamespace = 'autoembed'::regnamespace
    loop
        execute format('drop function %s', old);
    end loop;
end
$$;

-- Each watch's triggers carry its id in their names now (two watches of a table each have their
-- own). db/idempotent/040_triggers.sql replaces the main triggers on every migrate; the chunk
-- triggers, which only autoembed.watch makes, are renamed here.
do $$
declare
    found record;
begin
    for found in
        select t.tgname, t.tgrelid::regclass as rel, s.id
        from pg_trigger t
        join pg_proc p on p.oid = t.tgfoid and p.pronamespace = 'autoembed'::regnamespace and p.proname = 'forget_chunks'
        join autoembed.sources s on s.source = t.tgrelid
                                and t.tgargs = convert_to(s.id::text, getdatabaseencoding()) || '\x00'::bytea
        where t.tgname in ('autoembed_chunks_delete', 'autoembed_chunks_truncate', 'autoembed_chunks_key')
    loop
        begin
            execute format('alter trigger %I on %s rename to %I', found.tgname, found.rel, found.tgname || '_' || found.id);
        exception when insufficient_privilege then
            raise warning 'autoembed: the trigger % on % was not renamed: %', found.tgname, found.rel, sqlerrm;
        end;
    end loop;
end
$$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261201233000_named_watches.sql', '99a98983b70878775bf477cadcc6c452f5a6271f2df9683b5773dab262efd63b');
end
$autoembed_guard$;
