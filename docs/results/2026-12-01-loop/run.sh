#!/usr/bin/env bash
# One short DA-GRPO run through a real gateway whose tau schedule is set on the gateway only.
# Usage (from the repository root): bash docs/results/2026-12-01-loop/run.sh [WORK_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${1:-$(mktemp -d)}"
PY="${PYTHON:-python}"
dagrpo() { "$PY" -m dagrpo.cli "$@"; }
mkdir -p "$WORK"
dagrpo gateway add-device trainer-1 --keys-file "$WORK/keys.toml" > "$WORK/device.key"
dagrpo gateway add-device ops --admin --keys-file "$WORK/keys.toml" > "$WORK/admin.key"
dagrpo gateway serve --keys-file "$WORK/keys.toml" --sqlite-path "$WORK/gateway.db" --port 50077 \
  --metrics-port 9477 --log-level WARNING > "$WORK/gateway.log" 2>&1 &
GW=$!
trap 'kill $GW' EXIT
export GATEWAY_ADMIN_KEY="$(cat "$WORK/admin.key")" GATEWAY_ADDRESS=127.0.0.1:50077
for _ in $(seq 50); do dagrpo gateway budgets > /dev/null 2>&1 && break; sleep 0.2; done
# 8 responses a step: steps 1-3 are budgeted at tau 0.5, steps 4-6 at 0.1.
dagrpo gateway set-tau math --schedule 0:0.5,24:0.1 --mode meter
dagrpo train --config "$HERE/loop.toml" --set cloud.api_key="\"$(cat "$WORK/device.key")\"" \
  --out "$WORK/run" --no-progress
dagrpo gateway budgets --task math | tee "$WORK/budgets.txt"
curl -s http://127.0.0.1:9477/metrics | grep -E '^gateway_(responses|help_requests|reported_help_requests|usage_mismatch)_total' \
  | tee "$WORK/gateway_metrics.txt" || true
cp "$WORK/run/metrics.jsonl" "$WORK/run/evals.jsonl" "$WORK/budgets.txt" "$WORK/gateway_metrics.txt" "$HERE/"
sed 's/^api_key = .*/api_key = "(device key, not kept)"/' "$WORK/run/config.toml" > "$HERE/config.toml"
