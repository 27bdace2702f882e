#!/bin/sh
# The cloud LLM server requires the API key in $API_KEY_FILE (a compose secret): only the gateway,
# which holds the same key, gets answers from it.
set -eu
if [ ! -s "$API_KEY_FILE" ]; then
  echo "cloud-llm: no API key at $API_KEY_FILE (run deploy/make-keys.sh, see docs/fleet.md)" >&2
  exit 1
fi
key=$(cat "$API_KEY_FILE")
# the alias is the model name the gateway sends (GATEWAY_OPENAI_MODEL)
exec python -m llama_cpp.server --model "$MODEL" --model_alias "$MODEL_ALIAS" --n_ctx "$N_CTX" \
  --n_threads "$N_THREADS" --host 0.0.0.0 --port 8000 --api_key "$key"
