#!/bin/sh
# One-shot `keys` service: one API key per edge replica (edge-01 .. edge-$FLEET_DEVICES) and one
# admin key, in the shared `keys` volume. The gateway reads only the hashes (gateway-keys.toml);
# each edge replica claims one key file (deploy/edge-entrypoint.sh). Existing keys are kept, so a
# restart does not invalidate running devices; claims are cleared (every `up` starts fresh).
set -eu
dir=${KEYS_DIR:-/keys}
n=${FLEET_DEVICES:-4}
mkdir -p "$dir/devices" "$dir/claims"
rm -rf "$dir/claims"/*
[ -f "$dir/admin.key" ] || dagrpo gateway add-device fleet-admin --admin --keys-file "$dir/gateway-keys.toml" > "$dir/admin.key"
i=1
while [ "$i" -le "$n" ]; do
  name=$(printf 'edge-%02d' "$i")
  [ -f "$dir/devices/$name.key" ] || dagrpo gateway add-device "$name" --keys-file "$dir/gateway-keys.toml" > "$dir/devices/$name.key"
  i=$((i + 1))
done
# the gateway and edge images run as uid 1000; nobody else may read the keys
chown -R 1000:1000 "$dir"
chmod -R go-rwx "$dir"
echo "keys: $n device keys and an admin key in $dir"
