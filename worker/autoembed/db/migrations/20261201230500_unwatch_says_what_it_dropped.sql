-- autoembed.unwatch returns a sentence saying what it dropped instead of nothing (an empty row in
-- psql): a new return type, so the old signature goes; db/idempotent/020_watch.sql defines the new one.
drop function if exists autoembed.unwatch(regclass);  -- a fresh install has none yet
