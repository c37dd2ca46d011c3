-- Canopy's own database role, made once by a superuser (deploy/postgres/init-canopy-role.sh
-- runs this in the Postgres container; docs/deploy.md shows it with psql). psql variables:
--   role      the role the instances and `migrate` log in as (canopy)
--   password  its password
--   database  Canopy's database, which must exist (the container makes it from POSTGRES_DB)
--
-- The role owns its database and its schema public, and nothing more: no superuser, no
-- CREATEROLE, no CREATEDB, no replication. As owner it creates and alters its tables (the
-- migrations, which every instance also applies at start under an advisory lock) and uses
-- them; LISTEN, NOTIFY and advisory locks need no grant. On Postgres 15 and later, a role
-- that does not own the database cannot create tables in public.

CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER DATABASE :"database" OWNER TO :"role";
-- Other roles of the server (but superusers) may not connect to Canopy's database.
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;

\connect :"database"
-- Before Postgres 15 the schema public belongs to the bootstrap superuser; from 15 on, to
-- the database's owner (pg_database_owner). The same everywhere: Canopy's role.
ALTER SCHEMA public OWNER TO :"role";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
