#!/usr/bin/env bash
# The lead's one device call: both GPU benchmarks on a lent H100/H200, logs under $OUT.
# The device image has torch but not open_clip/diffusers/fastapi...: they travel as wheels in
# .whl (see docs/benchmarks.md for the download command). Usage (device tool, carry [".whl"]):
#   bash bench/gpu_run.sh
set -u
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "import torch, open_clip, diffusers; print('torch', torch.__version__, 'open_clip', open_clip.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/card.txt"
[ "${SKIP_TRAIN:-0}" = 1 ] || timeout "${TRAIN_TIMEOUT:-330}" python3 bench/train_step.py --real --warmup 3 --steps 10 > "$OUT/train_step.log" 2>&1
echo "train_step exit $?" >> "$OUT/train_step.log"
tail -25 "$OUT/train_step.log"
timeout "${SERVE_TIMEOUT:-200}" python3 bench/serve.py --gpu --out "$OUT/serve_gpu.json" > "$OUT/serve_gpu.log" 2>&1
echo "serve exit $?" >> "$OUT/serve_gpu.log"
tail -n 30 /tmp/diva-bench-*/server-gpu.log > "$OUT/server_gpu_server.log" 2>/dev/null
tail -15 "$OUT/serve_gpu.log"
