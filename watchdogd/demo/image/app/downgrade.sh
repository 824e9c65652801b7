#!/bin/sh
# Stands in for a schema downgrade (`alembic downgrade -1`), run by the playbook's exec step
# inside the bad release before it is replaced: only that release knows its own migration.
echo "schema downgraded: ${APP_VERSION} -> the schema of the release being restored"
