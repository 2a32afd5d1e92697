#!/bin/sh
# Runs once, when the postgres container initialises its volume: creates the group
# roles (mtrelay migrate tolerates them existing), the relay's service login and the
# first admin, with passwords from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v service_pw="$MTRELAY_SERVICE_PASSWORD" -v admin_user="$MTRELAY_ADMIN_USER" \
  -v admin_pw="$MTRELAY_ADMIN_PASSWORD" <<'SQL'
CREATE ROLE mtrelay_user NOLOGIN;
CREATE ROLE mtrelay_admin NOLOGIN IN ROLE mtrelay_user;
CREATE ROLE mtrelay_service NOLOGIN;
CREATE ROLE mtrelay LOGIN PASSWORD :'service_pw' IN ROLE mtrelay_service;
CREATE ROLE :"admin_user" LOGIN PASSWORD :'admin_pw' IN ROLE mtrelay_admin;
SQL
