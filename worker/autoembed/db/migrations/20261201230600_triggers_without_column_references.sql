-- Triggers that name no column of a watched table. The row-level trigger that flagged a content or
-- key change (autoembed_mark_changed) and the BEFORE trigger that cleared a stale vector
-- (autoembed_clear_embedding) named the content and key columns, or called the content function,
-- in their WHEN clauses: inside the application's UPDATE, with its rights, six times a row, and in
-- the way of ALTER COLUMN ... TYPE and of generated content columns. The flag's WHEN clause now
-- compares masked rows and the statement trigger clears stale vectors
-- (db/idempotent/040_triggers.sql, which installs the new triggers on every watched table); here
-- the clearing trigger and its function go.
do $$
declare
    watched regclass;
begin
    for watched in select s.source from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        execute format('drop trigger if exists autoembed_clear_embedding on %s', watched);
    end loop;
end
$$;
drop function if exists autoembed.clear_embedding();
