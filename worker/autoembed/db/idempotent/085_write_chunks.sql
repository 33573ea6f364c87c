-- Chunk write-back: a row's chunks replaced together, only for the content they were cut from.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- pgvector's `vector` type, schema-qualified (it may live in `public` or `extensions`).
create or replace function autoembed.vector_type()
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select format('%I.%I', n.nspname, t.typname)
    from pg_type t
    join pg_namespace n on n.oid = t.typnamespace
    join pg_depend d on d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'vector'
    where t.typname = 'vector'
$$;

-- The vectors the given rows' chunks have now, by chunk text hash: the worker embeds only chunks
-- whose text none of them has.
create or replace function autoembed.load_chunk_vectors(source_id int, pks text[])
returns table (pk text, chunk_hash uuid, embedding vector)
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
begin
    select * into src from autoembed.sources s where s.id = load_chunk_vectors.source_id;
    if src.chunk_table is null or not exists (select from pg_class c where c.oid = src.chunk_table) then
        return;
    end if;
    return query execute format(
        'select distinct on (c.parent_pk, c.chunk_hash) c.parent_pk::text, c.chunk_hash, c.embedding::%s
         from %s c where c.parent_pk = any($1::%s[])',
        autoembed.vector_type(), src.chunk_table, autoembed.key_type(src))
    using pks;
end
$$;
revoke execute on function autoembed.load_chunk_vectors(int, text[]) from public;
grant execute on function autoembed.load_chunk_vectors(int, text[]) to autoembed_worker;

-- Write rows' own vectors (the mean of their chunks') through autoembed.write_embeddings, which
-- guards each by the row's content hash and locks the row, and, in one more statement, replace
-- the chunks of exactly the rows it wrote: chunks the new set does not have are deleted, new
-- ones inserted, kept ones only moved (position, offsets; untouched where neither changed).
-- A reader sees the old chunks of a row or the new ones, never a mix. Rows whose content changed
-- meanwhile keep the chunks they had; the job for their new content replaces them. `chunk_pks`
-- and the other chunk arrays run in parallel, one element per chunk; a row written with a NULL
-- vector (empty content) loses its chunks. Returns the rows written, as write_embeddings does.
create or replace function autoembed.write_chunks(source_id int, embedder text, model text, pks text[], hashes uuid[],
                                                  vectors vector[], chunk_pks text[], chunk_hashes uuid[],
                                                  occurrences int[], positions int[], starts int[], ends int[],
                                                  texts text[], chunk_vectors vector[])
returns table (pk text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    src autoembed.sources;
    key_type text;
    written text[];
begin
    written := array(select w.pk from autoembed.write_embeddings(source_id, embedder, model, pks, hashes, vectors) w);
    select * into src from autoembed.sources s where s.id = write_chunks.source_id;
    if cardinality(written) = 0 or src.chunk_table is null then
        return query select unnest(written);
        return;
    end if;
    key_type := autoembed.key_type(src);
    execute format(
        'with new as (
             select n.* from unnest($1::text[], $2::uuid[], $3::int[], $4::int[], $5::int[], $6::int[], $7::text[], $8)
                 as n (pk, chunk_hash, occurrence, position, start_char, end_char, chunk, embedding)
             where n.pk = any($9)
         ), gone as (
             delete from %1$s c
             where c.parent_pk = any($9::%2$s[])
               and not exists (select from new n where n.pk::%2$s = c.parent_pk and n.chunk_hash = c.chunk_hash
                                                   and n.occurrence = c.occurrence)
         )
         insert into %1$s as c (parent_pk, chunk_hash, occurrence, position, start_char, end_char, chunk, embedding)
         select n.pk::%2$s, n.chunk_hash, n.occurrence, n.position, n.start_char, n.end_char, n.chunk, n.embedding
         from new n
         on conflict (parent_pk, chunk_hash, occurrence) do update
         set position = excluded.position, start_char = excluded.start_char, end_char = excluded.end_char
         where (c.position, c.start_char, c.end_char)
               is distinct from (excluded.position, excluded.start_char, excluded.end_char)',
        src.chunk_table, key_type)
    using chunk_pks, chunk_hashes, occurrences, positions, starts, ends, texts, chunk_vectors, written;
    return query select unnest(written);
end
$$;
revoke execute on function autoembed.write_chunks(int, text, text, text[], uuid[], vector[], text[], uuid[], int[], int[],
                                                  int[], int[], text[], vector[]) from public;
grant execute on function autoembed.write_chunks(int, text, text, text[], uuid[], vector[], text[], uuid[], int[], int[],
                                                 int[], int[], text[], vector[]) to autoembed_worker;
