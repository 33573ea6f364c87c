-- Several watches per table, each named. A watch's name is unique per table (a registration kept
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
