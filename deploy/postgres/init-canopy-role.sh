#!/bin/sh
# In the official Postgres image, /docker-entrypoint-initdb.d/ runs once, when the data volume
# is empty: it makes Canopy's role (canopy-role.sql, beside this file) as the superuser, so
# that the instances and `migrate` never log in as one. compose.yaml mounts both files.
set -eu
: "${CANOPY_DB_PASSWORD:?set CANOPY_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="${CANOPY_DB_USER:-canopy}" -v password="$CANOPY_DB_PASSWORD" -v database="$POSTGRES_DB" \
  -f /canopy/canopy-role.sql
