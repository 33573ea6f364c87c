-- Chunks and prompts. A watch may split its content into chunks, kept with their vectors in a
-- table of their own that autoembed makes and manages (autoembed.chunks_<source id>, named in
-- chunk_table; db/idempotent/075_chunks.sql), and it carries the prompts its model expects
-- before queries and before passages (db/idempotent/025_prompts.sql fills in those of known
-- model families). The row's own embedding column then holds the mean of its chunk vectors.
alter table autoembed.sources
    add column chunk_table regclass,
    add column chunk_tokens int check (chunk_tokens > 0),
    add column chunk_overlap int check (chunk_overlap >= 0),
    add column query_prompt text not null default '',
    add column passage_prompt text not null default '';
comment on column autoembed.sources.chunk_table is 'The chunks of the rows and their vectors (autoembed.chunks_<id>), where the watch splits its content; NULL otherwise.';
comment on column autoembed.sources.chunk_tokens is 'The most tokens of a chunk, by the model''s tokenizer; NULL: the model''s window, at most 512.';
comment on column autoembed.sources.chunk_overlap is 'Tokens a chunk repeats of the text before it; NULL: the worker''s default.';
comment on column autoembed.sources.query_prompt is 'Put before a search query when it is embedded (e.g. ''query: '' for e5 models).';
comment on column autoembed.sources.passage_prompt is 'Put before a row''s content, or each of its chunks, when it is embedded (e.g. ''passage: '').';

-- One search result, as autoembed.search collects them before returning them.
create type autoembed.search_hit as (pk text, content text, distance double precision, chunk text, chunk_position int);

-- watch() takes the new options and search() returns each row's best chunk: create or replace can
-- change neither, so the old signatures go here and db/idempotent creates the new ones.
drop function if exists autoembed.watch(regclass, text, name, text, text, text, int, boolean, boolean);
drop function if exists autoembed.search(regclass, vector, int);
