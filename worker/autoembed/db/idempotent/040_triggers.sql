-- Triggers on watched tables: enqueue on INSERT and content change, forget on DELETE and TRUNCATE,
-- clear stale vectors.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.
--
-- The statement triggers do the work, in SECURITY DEFINER functions (any role that may write a
-- watched table can, without access to autoembed or pgmq); a row-level trigger, filtered by a
-- WHEN clause that compares masked rows, keeps an UPDATE that changes no content cheap. No trigger names a column of the table or calls its content function (no
-- WHEN clause does, no column list): ALTER COLUMN ... TYPE works on every column, a generated
-- column can be the content, a renamed column is followed (names are looked up by attnum at each
-- statement), and a content function runs only inside the statement triggers, as their owner,
-- where its errors are caught. An application's statement never fails because of autoembed: a
-- source that no longer fits its table (a dropped column or function) warns instead.
--
-- A partitioned table (or a partition watched on its own) carries them on every partition that
-- exists at watch time, and also a row-level fallback, which PostgreSQL copies to partitions
-- created or attached later: it handles a row only when no statement trigger of this source
-- handles the statement (autoembed.note_statement), so such a partition behaves like the others
-- at once, row by row, until the next `watch` or `autoembed migrate` gives it its own statement
-- triggers (autoembed.refresh_triggers). The rows an attached table brings along were inserted
-- before: autoembed.backfill or autoembed.sweep finds them.

-- Row-level AFTER UPDATE, filtered by PostgreSQL itself: its WHEN clause (autoembed.trigger_specs)
-- compares the old and the new row with every column masked (set NULL) that neither is the key
-- nor holds the content (for a content function: only the vector column is masked), and catches a
-- vector removed (not by autoembed's own clearing). It names no column (the masks are text), so it stands in the way of no ALTER
-- TABLE. A column renamed or added since it was made is not masked: it flags more rows (then the
-- statement trigger decides, exactly) until the next `watch` or `autoembed migrate` makes it again
-- with the names as they are (autoembed.refresh_triggers); only a key or content column renamed
-- to a name that another column had at watch time would hide its changes until then. It flags the
-- transaction (a transaction-local setting, which a rolled-back statement or savepoint takes back);
-- without the flag the UPDATE statement trigger returns at once.
create or replace function autoembed.mark_content_changed()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('autoembed.changed_' || tg_argv[0], 'y', true);
    return null;
end
$$;

-- Statement-level AFTER INSERT / UPDATE / DELETE of a watched table (or one of its partitions),
-- and the row-level fallback (then one row stands in for the transition tables). tg_argv[0] is
-- the source id.
-- - INSERT enqueues the new keys: consecutive integer keys (a bulk INSERT into an identity table)
--   as their range, in one pass and with no exception block (each entry starts a subtransaction).
--   The row-level fallback also forgets what was known about its key (its partition has no
--   TRUNCATE trigger yet, so a row truncated there may have left records under it).
-- - UPDATE returns at once unless autoembed.mark_changed flagged a row of it (an UPDATE that
--   changes no content costs almost nothing). Then it enqueues the rows whose content or key
--   changed, and the rows whose vector was removed while their content stayed (e.g. an ORM saving
--   an instance loaded before its vector arrived; not when the content is empty: the worker itself
--   removes the vector then). With clear_on_change it clears, in the same statement, the vectors
--   of rows whose content changed (a second UPDATE of those rows' embedding column only, marked so
--   that these triggers ignore it, and caught: a constraint or trigger of the application's that
--   refuses a NULL vector leaves the stale vector until the worker replaces it, with a warning). Keys no row has any more (their rows took new ones) are
--   forgotten. A content function decides whether content changed: once per changed row that
--   holds a vector autoembed wrote (its hash against autoembed.row_state), else on the old and the
--   new row; an error in it counts as a change.
-- - DELETE forgets its rows' state and failures.
-- The worker's write-back changes only the vector column: it is not flagged, it enqueues nothing.
create or replace function autoembed.on_write()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    this_source constant int := tg_argv[0]::int;
    changed_flag constant text := 'autoembed.changed_' || tg_argv[0];
    -- the statement's rows: its transition tables, or the row-level fallback's one row ($1, $2)
    new_rows constant text := case when tg_level = 'ROW' then '(select ($1).*)' else 'autoembed_new' end;
    old_rows constant text := case when tg_level = 'ROW' then '(select ($2).*)' else 'autoembed_old' end;
    src autoembed.sources;
    pk_name name;
    integer_keys boolean;
    root regclass;
    first_pk bigint;
    last_pk bigint;
    key_count bigint;
    pks text[];
    gone text[];
    changes text;
begin
    if tg_op = 'INSERT' then
        select s.source, a.attname, a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
        into root, pk_name, integer_keys
        from autoembed.sources s
        left join pg_attribute a on a.attrelid = s.source and a.attnum = s.pk_attnum and not a.attisdropped
        where s.id = this_source;
        if root is null or (tg_relid <> root and pg_partition_root(tg_relid) is distinct from root) then
            return null;  -- unwatched, or a partition detached since: a left-over trigger
        elsif pk_name is null then
            raise warning 'autoembed: source % is broken (its key column was dropped): insert not handled', this_source;
            return null;
        end if;
        if tg_level = 'ROW' then
            execute format('select array[($1).%I::text]', pk_name) into pks using new;
            delete from autoembed.row_state s where s.source_id = this_source and s.pk = any(pks);
            delete from autoembed.failures f where f.source_id = this_source and f.pk = any(pks);
        elsif integer_keys then  -- consecutive keys (a bulk INSERT into an identity table): named by their ends
            execute format('select min(n.%1$I), max(n.%1$I), count(*) from autoembed_new n', pk_name)
            into first_pk, last_pk, key_count;
            if last_pk::numeric - first_pk + 1 = key_count then
                perform autoembed.enqueue_range(this_source, first_pk, last_pk);
                return null;
            end if;
        end if;
        if pks is null then
            execute format('select array_agg(n.%I::text) from autoembed_new n', pk_name) into pks;
        end if;
        perform autoembed.enqueue(this_source, pks);
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if current_setting('autoembed.clearing_' || tg_argv[0], true) = 'y' then
            perform set_config(changed_flag, '', true);  -- autoembed's own clearing of stale vectors (below)
            return null;
        elsif tg_level = 'STATEMENT' then
            if coalesce(current_setting(changed_flag, true), '') = '' then
                return null;  -- no row's key or content changed, no vector went
            end if;
            perform set_config(changed_flag, '', true);
        end if;
    end if;
    begin
        select * into src from autoembed.sources s where s.id = this_source;
        if not found or (tg_relid <> src.source and pg_partition_root(tg_relid) is distinct from src.source) then
            return null;
        end if;
        src := autoembed.current_names(src);
        perform autoembed.content_expr(src, 't');
    exception when undefined_column or undefined_table or undefined_function then
        raise warning 'autoembed: source % is broken (%): % not handled', this_source, sqlerrm, lower(tg_op);
        return null;
    end;
    if tg_op = 'DELETE' then
        execute format('select array_agg(o.%I::text) from %s o', src.pk_column, old_rows) into gone using new, old;
    else
        changes := format(
            'with d as (%s),
                  cleared as (update %s t set %I = null from d where $3 and d.clear and t.%I = d.k)
             select array_agg(d.k::text) filter (where d.enqueue), array_agg(d.ok::text) filter (where d.k is null) from d',
            autoembed.row_changes(src, new_rows, old_rows), tg_relid::regclass, src.embedding_column, src.pk_column);
        -- the content function may fail on some row, and the vector column may refuse NULL (a
        -- constraint, a trigger of the application's): then every row whose other columns changed
        -- counts as changed, then its vector stays (the worker replaces it)
        perform set_config('autoembed.clearing_' || tg_argv[0], 'y', true);
        begin
            execute changes into pks, gone using new, old, src.clear_on_change, src.id, true;
        exception when others then
            begin
                execute changes into pks, gone using new, old, src.clear_on_change, src.id, false;
            exception when others then
                raise warning 'autoembed: source % (%): the vectors of changed rows could not be cleared (%); they stay until their rows are embedded again',
                    src.id, src.table_name, sqlerrm;
                execute changes into pks, gone using new, old, false, src.id, false;
            end;
        end;
        perform set_config('autoembed.clearing_' || tg_argv[0], '', true);
    end if;
    perform autoembed.enqueue(src.id, pks);
    if gone is not null then  -- forget what was known about keys that are gone
        delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(gone);
        delete from autoembed.failures f where f.source_id = src.id and f.pk = any(gone);
    end if;
    return null;
end
$$;

-- The rows of an UPDATE (`new_rows`, `old_rows`: FROM items) paired by key, as a query of
-- (k: the new key, ok: the old key, enqueue: the row needs embedding, clear: its vector is stale),
-- for autoembed.on_write, whose parameters it uses: $4 the source id, $5 whether the content
-- function may be called (else every row whose other columns changed counts as changed).
-- A row needs embedding when its key or content changed, or when its vector was removed while
-- its content stayed (and is not empty: the worker removes the vector of empty content itself).
-- A content function is called on the new row only, against the hash autoembed.row_state holds
-- for the row's vector, or else on both rows; and only for rows whose other columns changed.
create or replace function autoembed.row_changes(src autoembed.sources, new_rows text, old_rows text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    as_source_row text;
begin
    if src.content_column is not null then
        return format(
            'select n.k, o.k as ok,
                    n.k is not null and (o.k is null or n.c is distinct from o.c
                                         or (o.v and not n.v and n.c ~ ''[^[:space:]]'')) as enqueue,
                    n.k is not null and n.v and (o.k is null or n.c is distinct from o.c) as clear
             from (select t.%1$I as k, %2$s as c, t.%3$I is not null as v from %4$s t) n
             full join (select t.%1$I as k, %2$s as c, t.%3$I is not null as v from %5$s t) o on o.k = n.k',
            src.pk_column, autoembed.content_expr(src, 't'), src.embedding_column, new_rows, old_rows);
    end if;
    -- a row as the content function takes it: of the source table's type, also on a partition
    as_source_row := format('row(%s)::%s',
        (select string_agg(format('t.%I', a.attname), ', ' order by a.attnum) from pg_attribute a
         where a.attrelid = src.source and a.attnum > 0 and not a.attisdropped), src.source);
    return format(
        'select k, ok, k is not null and (ok is null or dropped or changed) as enqueue,
                k is not null and v and (ok is null or changed) as clear
         from (select n.k, o.k as ok, n.v, coalesce(o.v and not n.v, false) as dropped,
                      case when n.k is null or o.k is null then false
                           when jsonb_populate_record(n.r, %6$L::jsonb) *= jsonb_populate_record(o.r, %6$L::jsonb) then false
                           when not $5 then true
                           when n.v and s.content_hash is not null then md5(%7$s)::uuid is distinct from s.content_hash
                           else %7$s is distinct from %8$s end as changed
               from (select t.%1$I as k, t.%3$I is not null as v, %2$s as r from %4$s t) n
               full join (select t.%1$I as k, t.%3$I is not null as v, %2$s as r from %5$s t) o on o.k = n.k
               left join autoembed.row_state s on s.source_id = $4 and s.pk = n.k::text
               offset 0) c',
        src.pk_column, as_source_row, src.embedding_column, new_rows, old_rows,
        (select jsonb_object_agg(a.attname, null) from pg_attribute a
         where a.attrelid = src.source and a.attnum = any (autoembed.vector_attnums(src))),
        autoembed.content_call(src, 'n.r'),
        autoembed.content_call(src, 'o.r'));
end
$$;

-- BEFORE TRUNCATE of a watched table, or of one of its partitions (before, so that a partition's
-- keys can still be read): forget the state and failures of the rows it removes, so that keys
-- used again (RESTART IDENTITY) start afresh. Truncating the table forgets the whole source once
-- per transaction; its partitions' own triggers, which fire with it, then have nothing to do.
create or replace function autoembed.on_truncate()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    select * into src from autoembed.sources s where s.id = tg_argv[0]::int;
    if not found or current_setting('autoembed.truncated_' || tg_argv[0], true) = 'y' then
        return null;
    end if;
    if tg_relid = src.source then
        delete from autoembed.row_state s where s.source_id = src.id;
        delete from autoembed.failures f where f.source_id = src.id;
        perform set_config('autoembed.truncated_' || tg_argv[0], 'y', true);
    elsif pg_partition_root(tg_relid) = src.source then
        begin
            src := autoembed.current_names(src);
            execute format('delete from autoembed.row_state s using %s t where s.source_id = $1 and s.pk = t.%I::text',
                           tg_relid::regclass, src.pk_column) using src.id;
            execute format('delete from autoembed.failures f using %s t where f.source_id = $1 and f.pk = t.%I::text',
                           tg_relid::regclass, src.pk_column) using src.id;
        exception when undefined_column or undefined_table then
            raise warning 'autoembed: source % is broken (%): truncate not handled', src.id, sqlerrm;
        end;
    end if;
    return null;
end
$$;

-- Statement-level BEFORE / AFTER INSERT, UPDATE and DELETE of a partitioned source's tables: while
-- a statement that this source's statement triggers handle runs, autoembed.statement_<id> holds its
-- trigger depth, so the row-level fallback (its WHEN clause) leaves that statement's rows alone;
-- while an UPDATE runs, autoembed.moving_<id> holds it too, so that a row it moves to another
-- partition (which PostgreSQL deletes and inserts: no row-level UPDATE trigger fires) is flagged
-- by autoembed_mark_moved_<id> as autoembed_mark_changed_<id> flags the others.
create or replace function autoembed.note_statement()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    depth constant text := case when tg_when = 'BEFORE' then (pg_trigger_depth() - 1)::text else '' end;
begin
    perform set_config('autoembed.statement_' || tg_argv[0], depth, true);
    if tg_op = 'UPDATE' or tg_when = 'AFTER' then
        perform set_config('autoembed.moving_' || tg_argv[0], depth, true);
    end if;
    return null;
end
$$;

-- The tables of a source that carry statement triggers: the table, and all its partitions (at
-- every level) that exist now.
create or replace function autoembed.source_tables(source regclass)
returns setof regclass
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select source
    union
    select t.relid from pg_partition_tree(source) t join pg_class c on c.oid = t.relid
    where t.level > 0 and c.relkind in ('r', 'p')
$$;

-- The vector columns of every watch of a source's table (by attnum): what the worker writes, so
-- that a content function's watch need not look at a row whose only change is another watch's vector.
create or replace function autoembed.vector_attnums(src autoembed.sources)
returns smallint[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select array_agg(distinct a) from (select src.embedding_attnum
                                       union all
                                       select s.embedding_attnum from autoembed.sources s where s.source = src.source) v(a)
$$;

-- The triggers a source needs, one row each: the table, the trigger's name, function and arguments,
-- the literals its WHEN clause holds (the masks of autoembed.mark_content_changed, as the columns
-- are named now) and the CREATE TRIGGER statement.
create or replace function autoembed.trigger_specs(src autoembed.sources)
returns table (rel regclass, trigger_name name, function_name text, args text[], literals text[], ddl text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    partitioned constant boolean := exists (select from pg_class c where c.oid = src.source
                                                                      and (c.relkind = 'p' or c.relispartition));
    id constant text := src.id::text;
    mask jsonb;
    vector_mask jsonb;
begin
    src := autoembed.current_names(src);
    mask := (select coalesce(jsonb_object_agg(a.attname, null), '{}') from pg_attribute a
             where a.attrelid = src.source and a.attnum > 0 and not a.attisdropped
               and case when src.content_column is null then a.attnum = any (autoembed.vector_attnums(src))
                        else a.attname <> all (array[src.pk_column, src.content_column]) end);
    vector_mask := jsonb_build_object(src.embedding_column, null);
    rel := src.source;
    trigger_name := 'autoembed_mark_changed_' || id;
    function_name := 'mark_content_changed';
    args := array[id];
    literals := array[quote_literal(mask::text), quote_literal(vector_mask::text)];
    ddl := format('create trigger %I after update on %s for each row
                   when ((jsonb_populate_record(old, %L::jsonb) *<> jsonb_populate_record(new, %L::jsonb)
                          or (jsonb_populate_record(new, %L::jsonb) *= new and jsonb_populate_record(old, %L::jsonb) *<> old))
                         and pg_catalog.current_setting(%L, true) is distinct from ''y'')
                   execute function autoembed.mark_content_changed(%L)',
                  trigger_name, rel, mask, mask, vector_mask, vector_mask, 'autoembed.clearing_' || id, id);
    return next;
    literals := null;
    for rel in select autoembed.source_tables(src.source) loop
        trigger_name := 'autoembed_enqueue_insert_' || id;
        function_name := 'on_write';
        args := array[id];
        ddl := format('create trigger %I after insert on %s referencing new table as autoembed_new
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_enqueue_update_' || id;
        ddl := format('create trigger %I after update on %s
                       referencing old table as autoembed_old new table as autoembed_new
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_forget_delete_' || id;
        ddl := format('create trigger %I after delete on %s referencing old table as autoembed_old
                       for each statement execute function autoembed.on_write(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_forget_truncate_' || id;
        function_name := 'on_truncate';
        ddl := format('create trigger %I before truncate on %s for each statement
                       execute function autoembed.on_truncate(%L)', trigger_name, rel, id);
        return next;
        continue when not partitioned;
        function_name := 'note_statement';
        trigger_name := 'autoembed_statement_begin_' || id;
        ddl := format('create trigger %I before insert or update or delete on %s for each statement
                       execute function autoembed.note_statement(%L)', trigger_name, rel, id);
        return next;
        trigger_name := 'autoembed_statement_end_' || id;
        ddl := format('create trigger %I after insert or update or delete on %s for each statement
                       execute function autoembed.note_statement(%L)', trigger_name, rel, id);
        return next;
    end loop;
    if partitioned then
        rel := src.source;
        trigger_name := 'autoembed_mark_moved_' || id;
        function_name := 'mark_content_changed';
        args := array[id];
        ddl := format('create trigger %I after delete on %s for each row
                       when (pg_catalog.current_setting(%L, true) = pg_catalog.pg_trigger_depth()::text)
                       execute function autoembed.mark_content_changed(%L)', trigger_name, rel, 'autoembed.moving_' || id, id);
        return next;
        trigger_name := 'autoembed_partition_rows_' || id;
        function_name := 'on_write';
        args := array[id];
        ddl := format('create trigger %I after insert or update or delete on %s for each row
                       when (pg_catalog.current_setting(%L, true) is distinct from pg_catalog.pg_trigger_depth()::text)
                       execute function autoembed.on_write(%L)', trigger_name, rel, 'autoembed.statement_' || id, id);
        return next;
    end if;
end
$$;

-- A trigger's arguments as pg_trigger.tgargs stores them (each followed by a zero byte).
create or replace function autoembed.trigger_args(args text[])
returns bytea
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(string_agg(convert_to(a, getdatabaseencoding()) || '\x00'::bytea, ''::bytea order by n), ''::bytea)
    from unnest(args) with ordinality u(a, n)
$$;

-- A source's triggers of autoembed's functions `functions` on its table and partitions: those
-- whose argument is its id (whatever their names: earlier autoembeds named them without it), and
-- those left by a watch of the table that is gone.
create or replace function autoembed.source_triggers(src autoembed.sources, functions text[])
returns table (rel regclass, trigger_name name, function_name text, args bytea, definition text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select t.tgrelid::regclass, t.tgname, p.proname::text, t.tgargs, pg_get_triggerdef(t.oid)
    from pg_trigger t join pg_proc p on p.oid = t.tgfoid
    where t.tgrelid in (select autoembed.source_tables(src.source)) and t.tgparentid = 0
      and p.pronamespace = 'autoembed'::regnamespace and p.proname = any (functions)
      and (t.tgargs = autoembed.trigger_args(array[src.id::text])
           or not exists (select from autoembed.sources s
                          where s.source = src.source and t.tgargs = autoembed.trigger_args(array[s.id::text])))
$$;

-- A source's autoembed triggers (of this file's functions) on its table and partitions.
create or replace function autoembed.installed_triggers(src autoembed.sources)
returns table (rel regclass, trigger_name name, function_name text, args bytea, definition text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select * from autoembed.source_triggers(src, array['mark_content_changed', 'on_write', 'on_truncate', 'note_statement'])
$$;

-- Drop a source's autoembed triggers (watch replaces them, unwatch removes them); those of the
-- table's other watches stay.
create or replace function autoembed.drop_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    installed record;
begin
    for installed in select * from autoembed.installed_triggers(src) loop
        execute format('drop trigger %I on %s', installed.trigger_name, installed.rel);
    end loop;
end
$$;

-- (Re)create a source's triggers (autoembed.trigger_specs) on its table and partitions.
create or replace function autoembed.install_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    spec record;
begin
    perform autoembed.drop_triggers(src);
    for spec in select * from autoembed.trigger_specs(src) loop
        execute spec.ddl;
    end loop;
end
$$;

-- Install a source's triggers again where they are not exactly the ones it needs: a partition
-- created or attached since, a renamed or added column (the masks of autoembed_mark_changed),
-- triggers of an earlier autoembed. Does nothing (takes no lock) where they are.
create or replace function autoembed.refresh_triggers(src autoembed.sources)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if exists (with wanted as (select s.rel, s.trigger_name, s.function_name, autoembed.trigger_args(s.args) as args,
                                      s.literals
                               from autoembed.trigger_specs(src) s),
                    present as (select * from autoembed.installed_triggers(src)),
                    matched as (select w.rel, w.trigger_name, w.function_name, w.args
                                from wanted w join present p using (rel, trigger_name, function_name, args)
                                where w.literals is null
                                   or not exists (select from unnest(w.literals) l where strpos(p.definition, l) = 0))
               (select rel, trigger_name, function_name, args from wanted except select * from matched)
               union all
               (select rel, trigger_name, function_name, args from present except select * from matched)) then
        perform autoembed.install_triggers(src);
        return true;
    end if;
    return false;
end
$$;

-- Bring the triggers of a source's table's other watches up to date after a watch of it came or
-- went (their masks name every watch's vector column: autoembed.vector_attnums).
create or replace function autoembed.refresh_neighbours(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    other autoembed.sources;
begin
    for other in select s.* from autoembed.sources s where s.source = src.source and s.id <> src.id order by s.id loop
        begin
            perform autoembed.refresh_triggers(other);
        exception when undefined_column or undefined_table or undefined_function then
            raise warning 'autoembed: the triggers of source % (%) were not refreshed: %', other.id, other.table_name, sqlerrm;
        end;
    end loop;
end
$$;

-- Every `autoembed migrate` brings the triggers of every watched table up to date; a source that no
-- longer fits its table, or whose table the migrating role may not alter, keeps what it has, with
-- a warning (autoembed.status says what is wrong with the source).
do $$
declare
    src autoembed.sources;
begin
    for src in select s.* from autoembed.sources s where exists (select from pg_class c where c.oid = s.source) loop
        begin
            perform autoembed.refresh_triggers(src);
        exception when undefined_column or undefined_table or undefined_function or insufficient_privilege then
            raise warning 'autoembed: the triggers of source % (%) were not refreshed: %', src.id, src.table_name, sqlerrm;
        end;
    end loop;
end
$$;
