#!/bin/sh
# Edge service start-up: this device's key is the one secret compose gives the container
# (/run/secrets/device-key, see docker-compose.yml); it goes to `dagrpo edge serve` through the
# process environment only, never through the compose file or `docker inspect`.
set -eu
key_file=${EDGE_API_KEY_FILE:-/run/secrets/device-key}
if [ ! -s "$key_file" ]; then
  echo "edge agent: no device key at $key_file (run deploy/make-keys.sh, see docs/fleet.md)" >&2
  exit 1
fi
EDGE_API_KEY=$(cat "$key_file")
export EDGE_API_KEY
exec dagrpo edge serve "$@"
