#!/usr/bin/env bash
# Build and start sprig behind nginx with docker compose, wait until it is healthy, print URLs.
#
#   deployment/deploy.sh                    build, start (or upgrade), wait, print URLs
#   deployment/deploy.sh --generate-token   first write a random API token to deployment/.env
#   deployment/deploy.sh --no-build         start with the images already built
#
# The API token: SPRIG_AUTH__TOKEN from the environment, else from deployment/.env (which
# compose reads too). Without one the script refuses to run: sprig listens beyond loopback
# inside the container, and an exposed server must not accept anonymous writes.
#
# Environment:
#   SPRIG_AUTH__TOKEN       API token (16+ characters); needed for writes
#   SPRIG_HTTP_PORT         host port nginx publishes (default 80)
#   SPRIG_DEPLOY_ENV_FILE   env file to read and write (default deployment/.env)
#   SPRIG_DEPLOY_TIMEOUT    seconds to wait for sprig to become healthy (default 600)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose_file="${here}/docker-compose.yml"
env_file="${SPRIG_DEPLOY_ENV_FILE:-${here}/.env}"
timeout="${SPRIG_DEPLOY_TIMEOUT:-600}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'deploy.sh: error: %s\n' "$*" >&2; exit 1; }

# The comment block at the top of this file.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

generate=false
build=(--build)
while [ $# -gt 0 ]; do
  case "$1" in
    --generate-token) generate=true ;;
    --no-build) build=() ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# The token as the env file sets it (last assignment wins, surrounding quotes removed).
token_from_env_file() {
  [ -f "${env_file}" ] || return 0
  sed -n 's/^[[:space:]]*SPRIG_AUTH__TOKEN=//p' "${env_file}" | tail -n 1 \
    | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/"
}

random_token() {
  if command -v openssl >/dev/null; then
    openssl rand -hex 32
  else
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
  fi
}

# ---- the token ----------------------------------------------------------------------------
token="${SPRIG_AUTH__TOKEN:-}"
[ -n "${token}" ] || token="$(token_from_env_file)"

if ${generate}; then
  if [ -n "${token}" ]; then
    say "an API token is already set (environment or ${env_file}); keeping it"
  else
    token="$(random_token)"
    umask 077
    if [ -f "${env_file}" ] && grep -q '^[[:space:]]*SPRIG_AUTH__TOKEN=' "${env_file}"; then
      # An empty `SPRIG_AUTH__TOKEN=` line (as in .env.example): fill it in place.
      sed -i.bak "s/^[[:space:]]*SPRIG_AUTH__TOKEN=.*/SPRIG_AUTH__TOKEN=${token}/" "${env_file}"
      rm -f "${env_file}.bak"
    else
      printf '# sprig API token, generated %s. Keep this file private; never commit it.\nSPRIG_AUTH__TOKEN=%s\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${token}" >>"${env_file}"
    fi
    chmod 600 "${env_file}"
    say "generated an API token and stored it in ${env_file}"
  fi
fi

if [ -z "${token}" ]; then
  die "no API token set. sprig in a container listens beyond loopback and requires one.
  Set SPRIG_AUTH__TOKEN (16+ characters) in the environment or in ${env_file},
  or run: $0 --generate-token"
fi
[ "${#token}" -ge 16 ] || die "SPRIG_AUTH__TOKEN must be at least 16 characters (sprig refuses shorter ones)"
export SPRIG_AUTH__TOKEN="${token}"

# ---- docker ---------------------------------------------------------------------------------
command -v docker >/dev/null || die "docker is not installed (https://docs.docker.com/engine/install/)"
docker compose version >/dev/null 2>&1 \
  || die "the docker compose plugin (v2.17 or newer) is not installed"
docker info >/dev/null 2>&1 \
  || die "cannot reach the Docker daemon (is it running, and may this user use it?)"

compose=(docker compose -f "${compose_file}")
[ -f "${env_file}" ] && compose+=(--env-file "${env_file}")

say "building and starting sprig and nginx (the first build compiles sprig: several minutes)"
"${compose[@]}" up -d ${build[@]+"${build[@]}"}

# ---- wait for health -------------------------------------------------------------------------
container="$("${compose[@]}" ps -q sprig)"
[ -n "${container}" ] || die "the sprig container did not start; see: docker compose -f ${compose_file} logs sprig"

say "waiting for sprig to become healthy (the first start trains the demo model)"
deadline=$(( $(date +%s) + timeout ))
last=""
while :; do
  health="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "${container}" 2>/dev/null || echo missing)"
  [ "${health}" != "${last}" ] && say "sprig: ${health}" && last="${health}"
  case "${health}" in
    healthy) break ;;
    unhealthy|exited|dead|missing)
      "${compose[@]}" logs --tail 40 sprig >&2 || true
      die "sprig is ${health}; its last log lines are above" ;;
  esac
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    "${compose[@]}" logs --tail 40 sprig >&2 || true
    die "sprig was not healthy after ${timeout} s (SPRIG_DEPLOY_TIMEOUT)"
  fi
  sleep 2
done

port="${SPRIG_HTTP_PORT:-}"
if [ -z "${port}" ] && [ -f "${env_file}" ]; then
  port="$(sed -n 's/^[[:space:]]*SPRIG_HTTP_PORT=//p' "${env_file}" | tail -n 1)"
fi
port="${port:-80}"
base="http://localhost"
[ "${port}" = "80" ] || base="${base}:${port}"

# Through nginx, as a client would see it (skipped without curl).
if command -v curl >/dev/null; then
  curl -fsS --retry 5 --retry-delay 1 --retry-connrefused -o /dev/null "${base}/readyz" \
    || die "sprig is healthy but ${base}/readyz through nginx failed; see: docker compose -f ${compose_file} logs nginx"
fi

cat <<EOF

sprig is up behind nginx.
  web page:   ${base}/
  API docs:   ${base}/docs   (spec: ${base}/openapi.json)
  health:     ${base}/readyz
  metrics:    ${base}/metrics
  writes need the API token (in the environment or ${env_file}):
    curl -H "Authorization: Bearer \$SPRIG_AUTH__TOKEN" -X POST ${base}/api/retrain
  logs:       docker compose -f ${compose_file} logs -f
  stop:       docker compose -f ${compose_file} stop
EOF
