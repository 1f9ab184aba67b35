#!/bin/bash
# Container health check: healthy only when `GET /readyz` answers 200 (store open and a model
# loaded). Installed in the image as /usr/local/bin/sprig-healthcheck (Dockerfile HEALTHCHECK).
#
# Why not curl: debian:bookworm-slim has no HTTP client, and curl would add ~10 MB of packages
# (libcurl, TLS, certificates) to the image only for this. bash, which the base image always
# has (it is an Essential package), can speak plain HTTP over /dev/tcp: one GET, read the
# status line. Docker's HEALTHCHECK --timeout bounds the whole check; `read -t` bounds it too
# when the script is run by hand.
#
# Address: SPRIG_HEALTHCHECK_ADDR (host:port), default 127.0.0.1 and the port of
# SPRIG_SERVER__ADDR (8080 in the image). Exit 0 healthy, 1 not.
set -uo pipefail

listen="${SPRIG_SERVER__ADDR:-0.0.0.0:8080}"
addr="${SPRIG_HEALTHCHECK_ADDR:-127.0.0.1:${listen##*:}}"
host="${addr%:*}"
port="${addr##*:}"

if ! { exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null; then
  echo "sprig is not listening on ${addr}"
  exit 1
fi
# HTTP/1.0: sprig closes the connection after the answer.
printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\nUser-Agent: sprig-healthcheck\r\n\r\n' "${addr}" >&3
if ! IFS= read -r -t 5 status <&3; then
  echo "no answer from sprig on ${addr}"
  exit 1
fi
status="${status%$'\r'}"
case "${status}" in
  "HTTP/1."?" 200"*) exit 0 ;;
esac
# Not ready: show the status line and the JSON reason (kept by `docker inspect` for the health log).
body=""
while IFS= read -r -t 2 line <&3; do
  line="${line%$'\r'}"
  [ -z "${line}" ] && break   # end of headers
done
IFS= read -r -t 2 -N 2000 body <&3 || true
echo "sprig not ready: ${status} ${body}"
exit 1
