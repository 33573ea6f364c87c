-- Write-back: vectors written only for the content they embed.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- Write vectors, each only if its row still holds the content that was embedded (the hash) and the
-- registration still names the embedder and model that made it; a row that already holds this very
-- vector is left alone. A NULL vector clears the column (content became NULL or empty). Vectors are
-- compared in the column's own type (then as real[]: the type's own `=` is not on the pinned
-- search_path): a halfvec column holds them rounded to 16 bits, so the full-precision vector is
-- never equal to what a halfvec column stores, only its rounding is.
-- Returns the rows whose vector now embeds their content (written, or already identical), and records
-- their row_state only while they keep their keys (FOR KEY SHARE: a DELETE or key change committed
-- meanwhile waits, then forgets; otherwise it left a record under a key no row has).
create or replace function autoembed.write_embeddings(source_id int, embedder text, model text, pks text[], hashes uuid[],
                                           vectors vector[])
returns table (pk text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    pk_type text;
    column_type text;
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
    pk_type := autoembed.key_type(src);
    select format_type(a.atttypid, a.atttypmod) into column_type
    from pg_attribute a where a.attrelid = src.source and a.attnum = src.embedding_attnum;
    execute format(
        'update %1$s t set %2$I = b.vec from unnest($1::text[], $2::uuid[], $3) as b(pk, hash, vec)
         where t.%3$I = b.pk::%4$s and md5(%5$s)::uuid is not distinct from b.hash
           and t.%2$I::real[] is distinct from b.vec::%6$s::real[]',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'), column_type)
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
                        and t.%2$I::real[] is not distinct from b.vec::%6$s::real[]
                      for key share of t)',
        src.source, src.embedding_column, src.pk_column, pk_type, autoembed.content_expr(src, 't'), column_type)
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
    -- a write succeeded: whatever the worker reported wrong with the source is over
    update autoembed.sources s set last_success_at = now(), problem = null, problem_at = null
    where s.id = src.id
      and (s.last_success_at is null or s.last_success_at < now() - interval '1 second' or s.problem is not null);
    return query select unnest(written);
end
$$;
revoke execute on function autoembed.write_embeddings(int, text, text, text[], uuid[], vector[]) from public;
grant execute on function autoembed.write_embeddings(int, text, text, text[], uuid[], vector[]) to autoembed_worker;
