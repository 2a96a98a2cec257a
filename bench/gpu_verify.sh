#!/bin/bash
# The CUDA paths, verified on a lent GPU machine in one call of the device tool (15 device-minutes a session):
#   1. the `gpu`-marked tests (QLoRA 4-bit and bf16 fine-tuning; 4-bit + bf16 serving with a per-request adapter);
#   2. `repocomplete finetune --method lora|qlora --precision bf16` on the real architectures of
#      Qwen2.5-Coder 0.5B and 1.5B (random weights: see bench/gpu_verify.py), on a stdlib package:
#      tokens/s and peak GPU memory from the run's metrics.json;
#   3. cold completion latency of the in-process engine on CUDA (bf16, 4-bit, with/without the adapter).
# Prepare here with `bash bench/gpu_bundle.sh` (the wheels the device image lacks, into .whl/), then
#   device run: command "bash bench/gpu_verify.sh", carry [".whl"], timeout_s 560.
# Every step has a deadline; what finished is in $OUT (env.txt, pytest.log, runs.jsonl, latency.jsonl, *.log).
set -u
OUT=${OUT:-/tmp/gpu-verify}; mkdir -p "$OUT"
DEADLINE=$(( $(date +%s) + ${GPU_VERIFY_SECONDS:-520} ))
budget() { local left=$(( DEADLINE - $(date +%s) - 5 )); (( left < $1 )) && echo $left || echo $1; }
export PYTHONUNBUFFERED=1 GIT_PYTHON_REFRESH=quiet HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SITE=/tmp/site; rm -rf $SITE; mkdir -p $SITE
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl > "$OUT/pip.log" 2>&1
tar xzf .whl/trimmed.tar.gz -C $SITE
export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; command -v git; nproc
  python3 -c "import torch, transformers, peft, bitsandbytes, accelerate, tree_sitter_language_pack
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))
print('transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__, 'accelerate', accelerate.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. the gpu-marked tests
timeout "$(budget 170)" python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout=160 \
    tests/repocomplete/test_transformers_backend.py tests/training/test_finetune_cli.py > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?"; tail -5 "$OUT/pytest.log"

# 2. finetune on the real architectures
REPO=/tmp/repo-email; rm -rf $REPO
cp -r "$(python3 -c 'import email, os; print(os.path.dirname(email.__file__))')" $REPO; rm -rf $REPO/__pycache__
for size in 05 15; do
  timeout "$(budget 60)" python3 bench/gpu_verify.py make-model .whl/qwen$size /tmp/q$size >> "$OUT/models.log" 2>&1
done
run() {  # label model method extra-args...
  local label=$1 model=$2 method=$3; shift 3
  local t; t=$(budget 110); (( t < 30 )) && { echo "skip $label (no time)"; return; }
  local start=$(date +%s)
  timeout "$t" python3 -m repocomplete finetune $REPO --base /tmp/$model --method $method --precision bf16 \
      --split files --max-steps 20 --eval-every 10 --save-every 0 --eval-samples 16 --em-samples 2 \
      --allow-no-improvement --force --out /tmp/adapters/$label "$@" > "$OUT/$label.log" 2>&1
  local rc=$?
  python3 - "$label" "$rc" "$(( $(date +%s) - start ))" "/tmp/adapters/$label/metrics.json" "$*" >> "$OUT/runs.jsonl" <<'PY'
import json, sys
label, rc, wall, path, extra = sys.argv[1:]
try:
    m = json.load(open(path))
except OSError:
    m = {}
print(json.dumps({"run": label, "rc": int(rc), "wall_s": int(wall), "extra": extra, "steps": m.get("steps"),
                  "train_tokens": m.get("train_tokens"), "tokens_per_s": m.get("tokens_per_s"),
                  "peak_gpu_memory_bytes": m.get("peak_gpu_memory_bytes"), "peak_rss_bytes": m.get("peak_rss_bytes"),
                  "loss_first": (m.get("history") or [{}])[0].get("loss"), "final_train_loss": m.get("final_train_loss"),
                  "heldout_before": m.get("before", {}).get("heldout_loss"), "heldout_after": m.get("after", {}).get("heldout_loss")}))
PY
  tail -1 "$OUT/runs.jsonl"
}
run q05-qlora q05 qlora
run q05-lora q05 lora
# 3. serving latency on CUDA, with the adapter just trained
timeout "$(budget 100)" python3 bench/gpu_verify.py latency /tmp/q05 /tmp/adapters/q05-lora > "$OUT/latency.jsonl" 2> "$OUT/latency.log"
echo "latency rc=$?"; cut -c1-200 "$OUT/latency.jsonl"
run q15-qlora q15 qlora
run q15-lora q15 lora
run q05-lora-b16 q05 lora --batch-size 16
nvidia-smi --query-gpu=memory.used --format=csv >> "$OUT/env.txt" 2>&1
echo "done at $(( DEADLINE - $(date +%s) ))s before the deadline"
