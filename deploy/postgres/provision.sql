-- One-time bootstrap of PECR's database roles, run by a PostgreSQL
-- administrator with psql (15 or newer): scripts/dev-up.sh runs it on every
-- start, the compose stack on the first start of an empty volume
-- (deploy/postgres/initdb/). Re-runnable.
--
-- Reads from the environment:
--   PECR_OWNER_DB_PASSWORD    pecr_owner: owns the pecr database, runs the
--                             migrations (CREATEROLE, not a superuser)
--   PECR_LEDGER_DB_PASSWORD   pecr_ledger_writer: ledger-writer's runtime
--                             login, member of pecr_ledger_rw
--   PECR_GATEWAY_DB_PASSWORD  pecr_gateway: the gateway's safe-view login,
--                             member of pecr_safeview_read
--   PECR_FIXTURE_SQL          path of fixtures/pg/safeview_fixtures.sql
-- An unset variable stops the script at its first use.

\set ON_ERROR_STOP on
\getenv owner_password PECR_OWNER_DB_PASSWORD
\getenv ledger_password PECR_LEDGER_DB_PASSWORD
\getenv gateway_password PECR_GATEWAY_DB_PASSWORD
\getenv fixture PECR_FIXTURE_SQL

SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY['pecr_owner', 'pecr_ledger_rw', 'pecr_safeview_read',
                  'pecr_ledger_writer', 'pecr_gateway']) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
\gexec

-- Attributes are set on every run, so a role created by hand is corrected.
ALTER ROLE pecr_owner WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE pecr_ledger_rw WITH NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE pecr_safeview_read WITH NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE pecr_ledger_writer WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS
    PASSWORD :'ledger_password';
ALTER ROLE pecr_gateway WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS
    PASSWORD :'gateway_password';
GRANT pecr_ledger_rw TO pecr_ledger_writer;
GRANT pecr_safeview_read TO pecr_gateway;

SELECT 'CREATE DATABASE pecr OWNER pecr_owner'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'pecr')
\gexec
ALTER DATABASE pecr OWNER TO pecr_owner;
-- Only the three roles connect, and nobody creates temporary tables.
REVOKE CONNECT, TEMPORARY ON DATABASE pecr FROM PUBLIC;
GRANT CONNECT ON DATABASE pecr TO pecr_ledger_rw, pecr_safeview_read;

\connect pecr
-- A pecr database created before the roles existed belongs to the
-- administrator: hand the public schema's tables, views and functions to
-- pecr_owner so its migrations may alter and grant on them.
DO $$
DECLARE
    item record;
BEGIN
    IF (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public')
        NOT IN ('pecr_owner', 'pg_database_owner') THEN
        ALTER SCHEMA public OWNER TO pecr_owner;
    END IF;
    FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND c.relowner <> 'pecr_owner'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO pecr_owner', item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner <> 'pecr_owner'::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO pecr_owner', item.name);
    END LOOP;
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The fixture belongs to pecr_owner too; it grants the views to the gateway.
SET ROLE pecr_owner;
\i :fixture
RESET ROLE;
