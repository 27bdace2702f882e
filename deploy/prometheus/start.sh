#!/bin/sh
# Prometheus in compose: deploy/prometheus/prometheus.yml plus one gateway target per gateway
# worker. `dagrpo gateway serve --workers N` gives worker i its own /metrics port, 9464 + i
# (cloud_gateway/cli.py), so GATEWAY_WORKERS (the same variable the gateway reads) decides the
# ports; every replica of the gateway service is found through DNS on each of them.
set -eu
n=${GATEWAY_WORKERS:-1}
src=${PROMETHEUS_TEMPLATE:-/etc/prometheus/prometheus.yml}
out=${PROMETHEUS_CONFIG:-/tmp/prometheus.yml}
cp "$src" "$out"
i=1
while [ "$i" -lt "$n" ]; do  # the gateway job is the template's last: its dns_sd_configs list goes on
  printf '      - names: ["gateway"]\n        type: A\n        port: %d\n        refresh_interval: 15s\n' \
    $((9464 + i)) >> "$out"
  i=$((i + 1))
done
exec "${PROMETHEUS_BIN:-/bin/prometheus}" --config.file="$out" "$@"
