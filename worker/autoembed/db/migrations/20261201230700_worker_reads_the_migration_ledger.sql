-- A worker's readiness (GET /readyz, and the check `autoembed worker` makes before it starts) compares
-- the migrations this database applied with those the package carries: a login granted only
-- autoembed_worker may read which were applied (names, checksums and times; nothing else).
grant select on autoembed.schema_migrations to autoembed_worker;
