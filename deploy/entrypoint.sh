#!/usr/bin/env bash
# Image entry point for every SimKO container: refuse unset or placeholder secrets, derive the
# URLs that carry the Redis password (so the password lives only in deploy/.env), then run the
# container's command.
set -euo pipefail

placeholder() { [ -z "${!1:-}" ] || [ "${!1}" = "change-me" ]; }

for name in ${SIMKO_REQUIRED_SECRETS:-}; do
    if placeholder "$name"; then
        echo "entrypoint: $name is unset or still the placeholder; set it in deploy/.env (see deploy/.env.example)" >&2
        exit 64
    fi
done

# Redis address without credentials in the compose file; the password joins it here.
if [ -n "${SIMKO_REDIS_ADDR:-}" ] && [ -z "${SIMKO_API_REDIS_URL:-}" ]; then
    export SIMKO_API_REDIS_URL="redis://:${REDIS_PASSWORD:?REDIS_PASSWORD is required with SIMKO_REDIS_ADDR}@${SIMKO_REDIS_ADDR}/0"
fi
# Ray's token auth: every node and driver of the cluster presents the same token.
if [ -n "${RAY_AUTH_TOKEN:-}" ]; then
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
fi
if [ -n "${SIMKO_CACHE:-}" ]; then
    mkdir -p "$SIMKO_CACHE"
fi

exec "$@"
