#!/bin/sh
# Edge replica start-up: claim one device key from the shared `keys` volume (an atomic mkdir per
# key; the claim records this container's hostname, so a restarted container gets its own key
# back), then exec `dagrpo edge serve` with it. Fails loudly when every key is taken.
set -eu
dir=${KEYS_DIR:-/keys}
me=${HOSTNAME:-$(hostname)}
for f in "$dir"/devices/*.key; do
  name=$(basename "$f" .key)
  claim="$dir/claims/$name"
  if mkdir "$claim" 2>/dev/null; then
    echo "$me" > "$claim/owner"
  elif [ "$(cat "$claim/owner" 2>/dev/null)" != "$me" ]; then
    continue
  fi
  EDGE_API_KEY=$(cat "$f")
  export EDGE_API_KEY
  export EDGE_OUTBOX_PATH="${EDGE_OUTBOX_PATH:-/data/$name-usage.sqlite}"
  echo "edge agent $me is device $name"
  exec dagrpo edge serve "$@"
done
echo "edge agent $me: no unclaimed device key in $dir/devices: raise FLEET_DEVICES to the number of edge replicas" >&2
exit 1
