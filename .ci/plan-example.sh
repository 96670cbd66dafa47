#!/usr/bin/env bash
# An example CI step (not run by `.ci/run`): what this pull request will rebuild once deployed.
#
# `autopilot plan` compares the pull request's definitions with what an instance last built. Two
# ways to give it that instance:
#
#   bash .ci/plan-example.sh production
#       The production instance, read through a read-only PostgreSQL role (or a read replica):
#       DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_READONLY_USER and
#       DAGSTER_PG_READONLY_PASSWORD come from the CI's secrets. `plan` only reads: it launches no
#       run and writes no cursor, and the instance below never creates or migrates tables.
#
#   bash .ci/plan-example.sh artifact path/to/dagster_home.tar.gz
#       The instance a previous CI run (on the main branch) stored as an artifact: a tarball of its
#       SQLite DAGSTER_HOME, e.g. made with `tar -czf dagster_home.tar.gz -C "$DAGSTER_HOME" .`.
#       It is unpacked into a scratch folder, so the artifact itself is never touched.
#
# Writes plan.md (or $PLAN_OUTPUT; a Markdown table for a pull-request comment) and exits 1 when a change is
# breaking (or unknown, which counts as breaking); drop `--fail-on breaking` for a report only.
# To post it, e.g. with the GitHub CLI: `gh pr comment "$PR_NUMBER" --body-file plan.md`.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export DAGSTER_HOME="$scratch/dagster_home"
mkdir -p "$DAGSTER_HOME"

case "$mode" in
    production)
        : "${DAGSTER_PG_HOST:?}" "${DAGSTER_PG_DB:?}" "${DAGSTER_PG_READONLY_USER:?}"
        : "${DAGSTER_PG_READONLY_PASSWORD:?}"
        export DAGSTER_PG_PORT="${DAGSTER_PG_PORT:-5432}"
        # Storage only: no run launcher or coordinator, since nothing is launched. Credentials are
        # read from the environment by Dagster; none is written to disk.
        cat >"$DAGSTER_HOME/dagster.yaml" <<'YAML'
storage:
  postgres:
    postgres_db:
      username: {env: DAGSTER_PG_READONLY_USER}
      password: {env: DAGSTER_PG_READONLY_PASSWORD}
      hostname: {env: DAGSTER_PG_HOST}
      db_name: {env: DAGSTER_PG_DB}
      port: {env: DAGSTER_PG_PORT}
      scheme: postgresql+psycopg2
    should_autocreate_tables: false
YAML
        ;;
    artifact)
        archive="${2:?usage: plan-example.sh artifact path/to/dagster_home.tar.gz}"
        tar -xzf "$archive" -C "$DAGSTER_HOME"
        ;;
    *)
        echo "usage: plan-example.sh production | artifact path/to/dagster_home.tar.gz" >&2
        exit 2
        ;;
esac

command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
uv sync --frozen
# Loading the definitions compiles the dbt project; compiling never connects. The code versions
# come from the SQL compiled for the target, relation names included, so compile for the target
# the instance built with: DBT_TARGET=postgres with production's POSTGRES_DB and POSTGRES_SCHEMA
# (POSTGRES_USER may be any name), or a DuckDB file of the same name as its warehouse (here
# warehouse.duckdb, the project's default). Under another database name every model counts as
# changed.
export AUTOPILOT_DUCKDB_PATH="$scratch/${AUTOPILOT_DUCKDB_FILE:-warehouse.duckdb}"

output="${PLAN_OUTPUT:-plan.md}"
status=0
uv run autopilot plan --markdown --fail-on breaking >"$output" || status=$?
cat "$output"
exit "$status"
