-- Triggers on watched tables: enqueue on INSERT and content change, forget on DELETE, clear stale vectors.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- A row-level AFTER UPDATE trigger, filtered by PostgreSQL itself (WHEN content or key changed: not
-- called at all otherwise), flags the transaction; without the flag the UPDATE statement trigger
-- returns at once, so an UPDATE that changes no content (counters, flags, timestamps) costs almost
-- nothing. AFTER, so it sees the final row, whatever other BEFORE triggers changed. The flag is a
-- transaction-local setting, so a rolled-back statement or savepoint takes it back.
create or replace function autoembed.mark_content_changed()
returns trigger
language plpgsql
-- Runs per changed row: no pinned search_path (it would cost a settings save/restore per row). It
-- is not SECURITY DEFINER and names only pg_catalog functions, so a caller's path gains nothing.
as $$
begin
    perform pg_catalog.set_config('autoembed.changed_' || tg_argv[0], 'y', true);
    return null;
end
$$;

-- Statement-level AFTER INSERT / UPDATE / DELETE, all on this function; a one-row statement pays
-- for the statement, not the row. An INSERT of consecutive integer keys enqueues their range (one
-- pass over the new rows, no array); other INSERTs list their keys. An INSERT looks up only the
-- key's current name and enters no exception block (each entry starts a subtransaction). A flagged
-- UPDATE enqueues the rows whose content or key changed and forgets keys no row has any more; a
-- DELETE forgets its rows' state and failures. A registration that no longer fits the table
-- (dropped column or function) never fails the application's statement: it warns instead.
-- SECURITY DEFINER: any role that may write a watched table can, without access to autoembed or pgmq.
create or replace function autoembed.on_write()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    source_id constant int := tg_argv[0]::int;
    changed_flag constant text := 'autoembed.changed_' || tg_argv[0];
    src autoembed.sources;
    pk_name name;
    integer_keys boolean;
    first_pk bigint;
    last_pk bigint;
    key_count bigint;
    pks text[];
begin
    if tg_op = 'INSERT' then
        select a.attname, a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
        into pk_name, integer_keys
        from autoembed.sources s join pg_attribute a on a.attrelid = s.source and a.attnum = s.pk_attnum
        where s.id = source_id and not a.attisdropped;
        if pk_name is null then
            raise warning 'autoembed: source % is broken (its key column was dropped): insert not handled', source_id;
            return null;
        end if;
        if integer_keys then  -- consecutive keys (a bulk INSERT into an identity table): named by their ends
            execute format('select min(n.%1$I), max(n.%1$I), count(*) from autoembed_new n', pk_name)
            into first_pk, last_pk, key_count;
            if last_pk::numeric - first_pk + 1 = key_count then
                perform autoembed.enqueue_range(source_id, first_pk, last_pk);
                return null;
            end if;
        end if;
        execute format('select array_agg(n.%I::text) from autoembed_new n', pk_name) into pks;
        perform autoembed.enqueue(source_id, pks);
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if coalesce(current_setting(changed_flag, true), '') = '' then
            return null;  -- no row's content or key changed
        end if;
        perform set_config(changed_flag, '', true);
    end if;
    begin
        select * into src from autoembed.sources s where s.id = source_id;
        src := autoembed.current_names(src);
        if tg_op = 'UPDATE' then
            execute format(
                'select array_agg(n.%1$I::text)
                 from autoembed_new n left join autoembed_old o on o.%1$I = n.%1$I
                 where o.%1$I is null or %2$s is distinct from %3$s',
                src.pk_column, autoembed.content_expr(src, 'n'), autoembed.content_expr(src, 'o'))
            into pks;
            perform autoembed.enqueue(source_id, pks);
            execute format(  -- keys that no row has any more: their rows took new keys
                'select array_agg(o.%1$I::text)
                 from autoembed_old o left join autoembed_new n on n.%1$I = o.%1$I where n.%1$I is null',
                src.pk_column)
            into pks;
        else
            execute format('select array_agg(o.%I::text) from autoembed_old o', src.pk_column) into pks;
        end if;
        if pks is not null then  -- forget what was known about keys that are gone
            delete from autoembed.row_state s where s.source_id = src.id and s.pk = any(pks);
            delete from autoembed.failures f where f.source_id = src.id and f.pk = any(pks);
        end if;
    exception when undefined_column or undefined_table or undefined_function then
        raise warning 'autoembed: source % is broken (%): % not handled', source_id, sqlerrm, lower(tg_op);
    end;
    return null;
end
$$;

-- Row-level, BEFORE UPDATE, only when the content changed (the trigger's WHEN clause): clears the
-- vector in the same statement, so a search never returns a vector of content that is gone.
create or replace function autoembed.clear_embedding()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    new := jsonb_populate_record(new, jsonb_build_object(tg_argv[0], null));
    return new;
end
$$;

-- Drop every autoembed trigger of a table (watch replaces them, unwatch removes them).
create or replace function autoembed.drop_triggers(source regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    trigger_name text;
begin
    foreach trigger_name in array array['autoembed_enqueue_insert', 'autoembed_mark_changed', 'autoembed_enqueue_update',
                                        'autoembed_forget_delete', 'autoembed_clear_embedding'] loop
        execute format('drop trigger if exists %I on %s', trigger_name, source);
    end loop;
end
$$;

-- (Re)create a source's triggers: the statement triggers, the WHEN-filtered flag (a content or key
-- change), and the BEFORE trigger that clears a stale vector where clear_on_change is set.
create or replace function autoembed.install_triggers(src autoembed.sources)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    content_changed text := format('%s is distinct from %s',
                                   autoembed.content_expr(src, 'old'), autoembed.content_expr(src, 'new'));
    key_changed text := format('old.%1$I is distinct from new.%1$I', src.pk_column);
begin
    perform autoembed.drop_triggers(src.source);
    execute format(
        'create trigger autoembed_enqueue_insert after insert on %s referencing new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_mark_changed after update on %s for each row
         when (%s or %s) execute function autoembed.mark_content_changed(%s)',
        src.source, content_changed, key_changed, src.id);
    execute format(
        'create trigger autoembed_enqueue_update after update on %s
         referencing old table as autoembed_old new table as autoembed_new
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    execute format(
        'create trigger autoembed_forget_delete after delete on %s referencing old table as autoembed_old
         for each statement execute function autoembed.on_write(%s)', src.source, src.id);
    if src.clear_on_change then
        execute format(
            'create trigger autoembed_clear_embedding before update on %s for each row
             when (%s) execute function autoembed.clear_embedding(%L)',
            src.source, content_changed, src.embedding_column);
    end if;
end
$$;
