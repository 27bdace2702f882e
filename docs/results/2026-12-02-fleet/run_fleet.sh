#!/bin/bash
# The issue-17 fleet run: 2 knob agents, tau 0.3 -> 0.1 at 270 s, Prometheus scraping beside it.
cd /work/wt/knob
rm -rf /tmp/knob-fleet/fleet /tmp/knob-fleet/prom/tsdb
mkdir -p /tmp/knob-fleet/fleet
nice -n 10 prometheus --config.file=/tmp/knob-fleet/prom/prometheus.yml --storage.tsdb.path=/tmp/knob-fleet/prom/tsdb \
  --web.listen-address=127.0.0.1:19099 --log.level=warn > /tmp/knob-fleet/prom/prometheus.log 2>&1 &
echo $! > /tmp/knob-fleet/prom/pid
PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 /work/main/.venv/bin/python -m dagrpo.cli fleet \
  --devices 2 --duration 600 --rate 0.06 --tasks math,science --tau 0.3 --tau-at 300:0.1 --mode meter \
  --max-tokens 40 --adapter /tmp/knob-fleet/run --help-knob --help-bias-file /tmp/knob-fleet/run/help_bias.json \
  --threads 1 --queue-size 32 --drain 150 --linger 10 --no-live --out /tmp/knob-fleet/fleet
echo "rc=$?"
