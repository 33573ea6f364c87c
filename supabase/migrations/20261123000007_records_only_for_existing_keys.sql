-- autoembed 20261123000007_records_only_for_existing_keys.sql: generated from the package's db/migrations by `autoembed supabase`; do not edit.
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
    done_names constant text[] := array['20261123000007_records_only_for_existing_keys.sql']::text[];
    pushed boolean := false;
begin
    if to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations where version = any($1))'
        into pushed using array(select left(n, 14) from unnest(done_names) n);
    end if;
    if pushed or exists (select from autoembed.schema_migrations m where m.name = any(done_names)) then
        raise notice 'autoembed: 20261123000007_records_only_for_existing_keys.sql is applied already';
        return;
    end if;
    execute $autoembed_sql$-- Records only for keys that exist. The worker writes row_state (write_embeddings) and failure
-- records (record_failures) for the rows of its batch. A row deleted, or given a new key, while the
-- worker wrote could keep such a record under a key no row has: the trigger had forgotten the key
-- before the worker's record arrived. Both now lock the rows they record for (FOR KEY SHARE: a
-- DELETE or key change waits for the worker's commit, then forgets; other updates go on).
-- Found by tests/reliability/test_concurrent_writers.py once it changed keys and checked for orphans.

-- Write vectors, each only if its row still holds the content that was embedded (the hash) and the
-- registration still names the embedder and model that made it; a row that already holds this very
-- vector is left alone. A NULL vector clears the column (content became NULL or empty).
-- Returns the rows whose vector now embeds their content (written, or already identical).
create or replace function autoembed.write_embeddings(source_id int, embedder text, model text, pks text[], hashes uuid[],
                                           vectors vector[])
returns table (pk text)
language plpgsql
security definer  -- as 000002 made it: create or replace would drop it
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    written text[];
begin
    -- FOR KEY SHARE: autoembed.watch() locks the registration FOR UPDATE before changing it, so it
    -- waits for this write, or this write sees the new model and skips (the re-queued jobs then embed
    -- with the new one). Unlike FOR SHARE it does not conflict with the last_success_at update below,
    -- which two workers would otherwise deadlock on.
    select * into src from autoembed.sources s where s.id = write_embeddings.source_id for key share;
    if not found or (src.embedder, src.model) is distinct from (write_embeddings.embedder, write_embeddings.model) then
        return;
    end if;
    src := autoembed.current_names(src);
    select format_type(a.atttypid, a.atttypmod) into pk_type from pg_attribute a
    where a.attrelid = src.source and a.attnum = src.pk_attnum;
    execute format(
        'update %1$s t set %2$I = b.vec from unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
         where t.%3$I = b.pk::%4$s and md5(%5$s)::uuid is not distinct from b.hash
           and t.%2$I::real[] is distinct from b.vec::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
    using pks, hashes, vectors;
    -- rows whose vector now embeds their current content: written above, or already identical
    -- FOR KEY SHARE: until this transaction ends nobody can delete these rows or change their keys
    -- (other updates go on), so the row_state written below belongs to rows that have these keys. A
    -- row whose vector was already identical is not locked by the UPDATE above: without this lock a
    -- DELETE committed meanwhile left its row_state behind.
    execute format(
        'select array(select t.%3$I::text from %1$s t join unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
                        on t.%3$I = b.pk::%4$s
                      where md5(%5$s)::uuid is not distinct from b.hash
                        and t.%2$I::real[] is not distinct from b.vec::real[]
                      for key share of t)',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'))
    into written using pks, hashes, vectors;
    if cardinality(written) = 0 then
        return;
    end if;
    insert into autoembed.row_state as s (source_id, pk, content_hash, embedded_at)
    select src.id, b.pk, b.hash, now()
    from unnest(pks, hashes) b(pk, hash)
    where b.pk = any(written) and b.hash is not null
    on conflict on constraint row_state_pkey do update
    set content_hash = excluded.content_hash, embedded_at = excluded.embedded_at;
    delete from autoembed.row_state s using unnest(pks, hashes) b(pk, hash)  -- a join: stays an index scan
    where b.hash is null and b.pk = any(written) and s.source_id = src.id and s.pk = b.pk;
    delete from autoembed.failures f where f.source_id = src.id and f.pk = any(written);
    update autoembed.sources s set last_success_at = now()
    where s.id = src.id and (s.last_success_at is null or s.last_success_at < now() - interval '1 second');
    return query select unnest(written);
end
$$;

-- Record rows that could not be embedded, unless their content changed meanwhile (a newer job
-- then owns the row). Where the source is broken the guard cannot run: record them anyway.
-- Returns the rows recorded.
create or replace function autoembed.record_failures(source_id int, pks text[], hashes uuid[], error_classes text[],
                                          error_messages text[], attempts int[])
returns table (pk text)
language plpgsql
security definer  -- as 000002 made it: create or replace would drop it
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    current_rows autoembed.loaded_row[];
begin
    select * into src from autoembed.sources s where s.id = record_failures.source_id;
    if not found then
        return;
    end if;
    begin
        -- FOR KEY SHARE, as in write_embeddings: a failure is recorded only for a row that keeps its
        -- key until this transaction ends (a DELETE committed meanwhile left its record behind).
        src := autoembed.current_names(src);
        select format_type(a.atttypid, a.atttypmod) into pk_type from pg_attribute a
        where a.attrelid = src.source and a.attnum = src.pk_attnum;
        execute format('select count(*) from (select from %1$s t where t.%2$I = any($1::%3$s[]) for key share of t) l',
                       src.source, src.pk_column, pk_type)
        using pks;
        current_rows := array(select l from autoembed.load_content(record_failures.source_id, pks) l);
    exception when undefined_column or undefined_table or undefined_function then
        current_rows := array(select row(b.pk, null, b.hash, false, null)::autoembed.loaded_row
                              from unnest(pks, hashes) b(pk, hash));
    end;
    return query
    with batch as (
        select * from unnest(pks, hashes, error_classes, error_messages, attempts) b(pk, hash, cls, msg, tries)
    )
    insert into autoembed.failures as f (source_id, pk, content_hash, error_class, error_message, attempts)
    select record_failures.source_id, b.pk, b.hash, b.cls, left(b.msg, 2000), b.tries
    from batch b join unnest(current_rows) c on c.pk = b.pk and c.content_hash is not distinct from b.hash
    on conflict on constraint failures_pkey do update
    set content_hash = excluded.content_hash, error_class = excluded.error_class,
        error_message = excluded.error_message, attempts = excluded.attempts, failed_at = now()
    returning f.pk;
end
$$;
$autoembed_sql$;
    insert into autoembed.schema_migrations (name, checksum) values ('20261123000007_records_only_for_existing_keys.sql', '378f83f6032ccd55c73db1d805525036f9ce0d26c2839ebd6fde1088fcc40e9d');
end
$autoembed_guard$;
