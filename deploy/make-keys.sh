#!/bin/sh
# The compose fleet's secrets, one file per secret, in $KEYS_DIR (default ./secrets): compose
# hands each service only the files it names (docker-compose.yml `secrets:`), read-only.
#
#   sh deploy/make-keys.sh                      # on the host, with dagrpo installed
#   docker-compose run --rm keys                # or in the gateway image (writes ./secrets)
#
# Files (existing ones are kept: a rerun adds devices, it never invalidates running ones):
#   gateway-keys.toml    device and admin key *hashes*: the gateway's only key material
#   devices/edge-NN.key  one raw device key per edge service (edge-01 .. edge-$FLEET_DEVICES)
#   admin.key            the admin key: for the operator and the `admin` one-shot service only
#   redis-users.acl      Redis ACL: `default` may only PING (the healthcheck), `gateway` may run the
#                        store's commands on gw:* keys, nothing else
#   gateway-secrets.toml the gateway's redis_url (with its Redis password) and openai_api_key
#   cloud-llm.key        the API key the cloud LLM server requires (the same one as in gateway-secrets.toml)
#   edge-keys.toml       client key hashes the edge agents accept (`dagrpo edge add-key`)
#   loadgen.key          the load generator's client key for the edge agents
# The directory is 0700 (nobody else on the host reaches the files); the files are 0644 because
# each container reads its own through a bind mount under its own uid (gateway and edge 1000,
# redis 999, grafana 472, ...). Run as root (the `keys` service), the files go to the directory's
# owner: create it first (`mkdir -m 700 secrets`) or Docker creates it owned by root.
set -eu
dir=${KEYS_DIR:-./secrets}
n=${FLEET_DEVICES:-4}
mkdir -p "$dir/devices"
chmod 700 "$dir"

token() {  # 43 URL-safe characters, about 256 bits
  tr -dc 'A-Za-z0-9_-' < /dev/urandom | head -c 43
}

[ -f "$dir/admin.key" ] || dagrpo gateway add-device fleet-admin --admin --keys-file "$dir/gateway-keys.toml" > "$dir/admin.key"
i=1
while [ "$i" -le "$n" ]; do
  name=$(printf 'edge-%02d' "$i")
  [ -f "$dir/devices/$name.key" ] || dagrpo gateway add-device "$name" --keys-file "$dir/gateway-keys.toml" > "$dir/devices/$name.key"
  i=$((i + 1))
done

if [ ! -f "$dir/redis-users.acl" ] || [ ! -f "$dir/gateway-secrets.toml" ] || [ ! -f "$dir/cloud-llm.key" ]; then
  redis_password=$(token)
  llm_key=$(token)
  # the store's commands (cloud_gateway/store/redis_store.py, cluster.py) and what budget.lua calls
  cat > "$dir/redis-users.acl" <<EOF
user default on nopass resetchannels -@all +ping
user gateway on >$redis_password ~gw:* resetchannels -@all +ping +select +cluster|slots +scan +eval +evalsha +asking +script|load +get +set +del +exists +expire +hget +hset +hsetnx +hmget +hgetall +hincrby
EOF
  printf 'redis_url = "redis://gateway:%s@redis:6379/0"\nopenai_api_key = "%s"\n' "$redis_password" "$llm_key" \
    > "$dir/gateway-secrets.toml"
  printf '%s\n' "$llm_key" > "$dir/cloud-llm.key"
fi
if [ ! -f "$dir/loadgen.key" ] || [ ! -f "$dir/edge-keys.toml" ]; then  # edge_agent/auth.py's format
  key="dek_$(token)"
  printf '# Edge agent API key hashes (deploy/make-keys.sh). Keys themselves are not stored.\n[clients]\n"loadgen" = "sha256:%s"\n' \
    "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" > "$dir/edge-keys.toml"
  printf '%s\n' "$key" > "$dir/loadgen.key"
fi

chmod 755 "$dir/devices"
find "$dir" -type f -exec chmod 644 {} +
chmod 700 "$dir"
if [ "$(id -u)" = 0 ]; then
  chown -R "$(stat -c %u:%g "$dir")" "$dir"  # the bind-mounted directory's owner: the operator
fi
echo "keys: $n device keys, an admin key, the Redis ACL, the cloud LLM key and a load-generator key in $dir"
