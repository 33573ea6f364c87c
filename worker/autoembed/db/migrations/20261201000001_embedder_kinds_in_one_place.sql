-- The embedder kinds are declared once, in the package (autoembed.embedders.registry.KINDS), and
-- mirrored by autoembed.embedder_kinds() (db/idempotent/020_watch.sql), which watch() checks and a
-- test holds equal to the declaration. The table's own check listed them a third time, so a new
-- kind needed a migration: it goes.
alter table autoembed.sources drop constraint if exists sources_embedder_check;
