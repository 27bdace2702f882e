#!/usr/bin/env bash
# Launch vLLM's OpenAI-compatible server as the gateway's cloud model (GPU machines only).
#
#   MODEL=/models/Qwen2.5-7B-Instruct PORT=8000 bash deploy/vllm/serve.sh
#   dagrpo gateway serve --backend openai   # with GATEWAY_OPENAI_BASE_URL=http://127.0.0.1:8000/v1
#                                           #      GATEWAY_OPENAI_MODEL=cloud
#
# MODEL must be a local directory (no hub downloads: HF_HUB_OFFLINE=1). vLLM is not a dependency
# of this project: install it on the GPU machine (`pip install vllm`) next to its CUDA torch.
set -euo pipefail
: "${MODEL:?set MODEL to a local model directory}"
PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"
SERVED_NAME="${SERVED_NAME:-cloud}"
MAX_LEN="${MAX_LEN:-8192}"
GPU_MEM="${GPU_MEM:-0.90}"
export HF_HUB_OFFLINE=1
exec python -m vllm.entrypoints.openai.api_server \
  --model "$MODEL" --served-model-name "$SERVED_NAME" \
  --host "$HOST" --port "$PORT" \
  --max-model-len "$MAX_LEN" --gpu-memory-utilization "$GPU_MEM" \
  --dtype auto --enable-prefix-caching "$@"
