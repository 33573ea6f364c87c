-- The demo table of `autoembed demo`: documents with a 384-dimensional embedding column
-- (all-MiniLM-L6-v2) and an HNSW index for cosine search. Re-running the demo starts afresh.
select autoembed.unwatch(s.source) from autoembed.sources s where s.source = to_regclass('public.demo_documents');
drop table if exists public.demo_documents;
create table public.demo_documents (
    id bigint generated always as identity primary key,
    title text not null,
    body text not null,
    embedding vector(384)
);
create index demo_documents_embedding_idx
    on public.demo_documents using hnsw (embedding vector_cosine_ops);
