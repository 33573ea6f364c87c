-- Hands the pgmq extension and every object in it to `postgres`, as Supabase does after
-- `create extension pgmq` (its after-create script), so that `postgres` can create and drop
-- queues (pgmq.create adds the queue's tables to the extension, which only its owner may do).
-- Used for pgmq 1.4.4: the other half of Supabase's script replaces drop_queue(text), which
-- exists only from pgmq 1.5 on.
do $$
declare
    pgmq_oid oid := (select oid from pg_catalog.pg_extension where extname = 'pgmq');
    member record;
begin
    update pg_catalog.pg_extension set extowner = 'postgres'::regrole where oid = pgmq_oid;
    for member in
        select o.type, o.identity
        from pg_catalog.pg_depend d
        cross join lateral pg_catalog.pg_identify_object(d.classid, d.objid, 0) o
        where d.refclassid = 'pg_catalog.pg_extension'::regclass and d.refobjid = pgmq_oid and d.deptype = 'e'
        order by o.type, o.identity
    loop
        execute format('alter %s %s owner to postgres',
                       case when member.type like '%type' then 'type' else member.type end, member.identity);
    end loop;
end
$$;
