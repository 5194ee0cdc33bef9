#!/usr/bin/env bash
# Runs schemathesis against a live gateway: every operation of the served OpenAPI document,
# generated and negative inputs, all checks (no 5xx, every response matches the schema).
# Excluded, and covered by the Swift suites instead: positive_data_acceptance (the schema cannot
# express Chaos Toolkit validity, cursor validity or "a time in the future", so schema-valid
# input is rightly refused with 400) and /run (503 runner.not_configured without a runner).
# Usage: schemathesis.sh BASE_URL OWNER_TOKEN   (the Swift suite GatewayTests runs it itself
# when a schemathesis binary is found; see SchemathesisTests.swift).
set -euo pipefail
base=${1:?base url, e.g. http://127.0.0.1:8080}
token=${2:?an owner token}
st=${SCHEMATHESIS:-$(dirname "$0")/../../.venv-gw/bin/schemathesis}
exec "$st" run "$base/api/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-path '/api/v1/experiments/{id}/run' \
    -n "${SCHEMATHESIS_EXAMPLES:-25}" \
    --seed 1 --no-color "${@:3}"
