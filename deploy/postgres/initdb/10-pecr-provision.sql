-- The compose stack's PostgreSQL runs this once, on the first start of an
-- empty volume, as its bootstrap superuser: the roles, the pecr database
-- and the safe-view fixture (see deploy/postgres/provision.sql). The
-- passwords come from the container's environment.
\i /pecr/provision.sql
