#!/bin/sh
# /usr/local/bin/manage in the image: `docker compose exec web manage verify_ledger` runs
# `python manage.py verify_ledger` the way the services run: through the entrypoint (secret files
# read, privileges dropped to 10001), since `docker compose exec` bypasses ENTRYPOINT.
exec python /app/entrypoint.py python /app/manage.py "$@"
