-- Query and passage prompts: what a model expects before a search query and before a document.
-- Current definitions, re-applied by every `autoembed migrate` (create or replace): edit here.

-- The prompts of a known model family (matched in the model name, case-insensitively; the first
-- match wins), or none. autoembed.watch stores them in the registration unless told otherwise, so
-- a later change of this table never changes the vectors of an existing watch.
create or replace function autoembed.model_prompts(embedder text, model text, out query_prompt text, out passage_prompt text)
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(f.query_prompt, ''), coalesce(f.passage_prompt, '')
    from (select 1) one
    left join lateral (
        select p.query_prompt, p.passage_prompt
        from (values
            (1, 'multilingual-e5-[a-z]+-instruct', E'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ', ''),
            (2, '(^|[/_-])e5-', 'query: ', 'passage: '),
            (3, 'bge-m3|bge-multilingual', '', ''),
            (4, 'bge-[a-z]+-zh', '为这个句子生成表示以用于检索相关文章：', ''),
            (5, 'bge-[a-z]+-en|mxbai-embed-large', 'Represent this sentence for searching relevant passages: ', ''),
            (6, 'nomic-embed-text', 'search_query: ', 'search_document: '),
            (7, 'snowflake-arctic-embed-[a-z]+-v2', 'query: ', ''),
            (8, 'snowflake-arctic-embed', 'Represent this sentence for searching relevant passages: ', ''),
            (9, 'qwen3-embedding', E'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:', '')
        ) p (rank, pattern, query_prompt, passage_prompt)
        where model_prompts.embedder <> 'hashing' and model_prompts.model ~* p.pattern
        order by p.rank
        limit 1
    ) f on true
$$;
comment on function autoembed.model_prompts is 'The query and passage prompts a known model family expects (e5: query: / passage: , bge, nomic, arctic, ...), or empty ones.';

-- The prompts a watch stores: each one given, else the model family's. The e5 embedder adds
-- `query: ` and `passage: ` itself, so it refuses others.
create or replace function autoembed.resolve_prompts(embedder text, model text, wanted_query_prompt text,
                                                     wanted_passage_prompt text, out query_prompt text, out passage_prompt text)
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    family record := autoembed.model_prompts(embedder, model);
begin
    query_prompt := coalesce(wanted_query_prompt, family.query_prompt);
    passage_prompt := coalesce(wanted_passage_prompt, family.passage_prompt);
    if embedder = 'e5' and (query_prompt, passage_prompt) is distinct from (family.query_prompt, family.passage_prompt) then
        raise exception 'autoembed.watch: the e5 embedder puts % before queries and % before passages itself; other prompts cannot be set',
            quote_literal(family.query_prompt), quote_literal(family.passage_prompt);
    end if;
end
$$;
