-- The sweep: re-enqueue rows every other path missed.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Re-enqueue rows that are missing an embedding but have neither a pending job nor a failure
-- record (a job lost to a restore, a disabled trigger, a truncated queue); prune the archive.
create or replace function autoembed.sweep(max_rows int default 10000)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pks text[];
    total bigint := 0;
begin
    for src in select s.* from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        begin
            src := autoembed.current_names(src);
            execute format(
                'select array(
                     select t.%1$I::text from %2$s t
                     where t.%3$I is null
                       and not exists (select from autoembed.failures f where f.source_id = $1 and f.pk = t.%1$I::text)
                       and t.%1$I::text not in (select j.pk from autoembed.jobs j where j.source_id = $1)
                     limit $2)',
                src.pk_column, src.source, src.embedding_column)
            into pks using src.id, max_rows;
            total := total + autoembed.enqueue(src.id, pks);
        exception when undefined_column or undefined_table then
            raise warning 'autoembed.sweep: source % (%) is broken: %', src.id, src.table_name, sqlerrm;
        end;
    end loop;
    delete from pgmq.a_autoembed_jobs where archived_at < now() - interval '7 days';
    return total;
end
$$;

-- Where pg_cron runs in this database, the sweep runs every minute (cron.schedule replaces a job of
-- the same name).
do $$
begin
    if exists (select from pg_extension where extname = 'pg_cron') then
        perform cron.schedule('autoembed-sweep', '* * * * *', 'select autoembed.sweep()');
    end if;
end
$$;
