#!/usr/bin/env bash
# Runs once, on the primary's first start (empty data volume), from the official postgres
# image's /docker-entrypoint-initdb.d: a replication role for postgres-replica and the
# pg_hba.conf line that lets it stream. REPLICATION_PASSWORD comes from compose.yaml.
set -euo pipefail

: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
