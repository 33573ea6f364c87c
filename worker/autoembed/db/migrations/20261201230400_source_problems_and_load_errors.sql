-- What the worker found wrong with a source, and why a row could not be loaded.
--
-- autoembed.sources.problem: set by the worker (autoembed.report_problem) when it cannot serve a
-- source (a model that does not load, a model whose dimension is not the column's, content that
-- cannot be evaluated, an embedder that stopped answering); cleared by the next successful write.
-- autoembed.status shows it as the source's state until then, or until the source is watched again.
alter table autoembed.sources
    add column problem text,
    add column problem_at timestamptz;
comment on column autoembed.sources.problem is 'What the worker last found wrong with this source (shown as its state by autoembed.status); NULL once a write succeeds.';
comment on column autoembed.sources.problem_at is 'When the worker reported `problem`.';

-- autoembed.load_content tells why a row has no content: the key cannot be one of the table's (a
-- poison job), the content function raised for this row, or the content cannot be evaluated at all.
alter type autoembed.loaded_row add attribute error_kind text;

-- autoembed.status gains the rows that are neither embedded, pending nor failed: a new return type,
-- so the view and its function go here and db/idempotent/100_status.sql creates the new ones.
drop view if exists autoembed.status;
drop function if exists autoembed.source_status();
