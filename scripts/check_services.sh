#!/usr/bin/env bash
# The local services the test suite needs: PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) for the
# MLflow-server-on-PostgreSQL tests. Tries to start a stopped one (Debian's pg_ctlcluster); exits 1, saying what
# is missing, when it still cannot be reached, so a missing service fails CI instead of skipping tests.
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 -t 3 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! pg_up; then
  echo "check_services: PostgreSQL is not answering on 127.0.0.1:5432; trying to start it" >&2
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$version" main start || true; done
  fi
  for _ in $(seq 1 20); do pg_up && break; sleep 1; done
fi
if ! pg_up; then
  echo "check_services: PostgreSQL is required on 127.0.0.1:5432 (trust auth, database test) and is not reachable" >&2
  exit 1
fi
echo "check_services: PostgreSQL on 127.0.0.1:5432 is up"
