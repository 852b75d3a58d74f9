#!/bin/bash
# The GPU check: what CPU machines cannot test, on a machine with CUDA GPUs, in under 10 minutes.
#
#     make vllm            # once: PyPI's `vllm` (CUDA torch) + the training dependencies in .venv-vllm
#     bench/gpu_check.sh   # OUT=/tmp/rlvr-gpu-check by default; a summary at the end
#
# On a GPU node the vLLM virtualenv is the training environment too (the project's .venv holds the
# CPU build of torch), so every step runs from it, with this checkout importable.
#   1. the engine contract on CUDA (both vLLM engines) and the GPU-only paths: sleep mode between
#      generations, NCCL weight transfer to a server, DeepSpeed ZeRO-2/3 (when installed)
#   2. a short bf16 GRPO run of SmolLM2-135M with each engine (hf, vllm, vllm_server)
#   3. the sampler/trainer mismatch in bf16 with the correction off and on
#   4. tokens/s of each engine at 8x4 and 16x8 completions (bench/rollout_throughput.py)
#   5. SFT and GRPO under FSDP on every visible GPU (configs/accelerate/fsdp.yaml)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${RLVR_VLLM_PYTHON:-$PWD/.venv-vllm/bin/python}
export RLVR_VLLM_PYTHON=$PY PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-/tmp/rlvr-gpu-check}
NGPU=$(nvidia-smi -L | wc -l)
rm -rf "$OUT" && mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
status() { echo "$1: $2" | tee -a "$SUMMARY"; }
step() { local name=$1 limit=$2; shift 2; echo "=== $name" >&2
         if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then status "$name" ok; else status "$name" "FAILED (see $OUT/$name.log)"; fi; }

[ -x "$PY" ] || { echo "no $PY: run make vllm first" >&2; exit 2; }
nvidia-smi -L | tee "$OUT/gpus.txt"
"$PY" -c "import torch, vllm; assert torch.cuda.is_available(); print('torch', torch.__version__, 'vllm', vllm.__version__)" | tee -a "$SUMMARY" || exit 2

# 1. contract + GPU-only paths (~3 min)
step contract 300 "$PY" -m pytest -q -p no:cacheprovider --basetemp="$OUT/pytest" -m vllm \
    tests/pipeline/rollout/test_contract.py tests/pipeline/rollout/test_vllm_gpu.py
step deepspeed 240 "$PY" -m pytest -q -p no:cacheprovider --basetemp="$OUT/pytest-ds" -k deepspeed \
    tests/pipeline/trainers/test_distributed.py

# 2 + 3. bf16 GRPO with each engine, the vLLM ones with the correction off and on (~3 min)
GRPO=(--config configs/tiny.yaml model.name=smollm2-135m model.dtype=bfloat16 task.sft_size=0 task.eval_size=64
      grpo.steps=15 grpo.prompts_per_step=16 grpo.group_size=4 grpo.lr=1e-6 grpo.warmup_steps=0 grpo.eval_every=0
      grpo.drop_equal_groups=false rollout.max_new_tokens=64 rollout.weight_check.tolerance=0.1)
for run in hf vllm:truncate vllm:none vllm_server:truncate vllm_server:none; do
    engine=${run%%:*}; mode=${run#*:}; extra=()
    [ "$engine" != hf ] && extra=(rollout.backend="$engine" rollout.correction.mode="$mode" rollout.gpu_memory_utilization=0.3)
    step "grpo-${run/:/-}" 180 "$PY" -m pipeline.trainers.grpo "${GRPO[@]}" output_dir="$OUT/grpo-${run/:/-}" "${extra[@]}"
done
"$PY" - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import json, statistics, sys
from pathlib import Path
print("| run | reward first -> last | mismatch KL | mean abs dlogp | clipped | probe max |")
for d in sorted(Path(sys.argv[1]).glob("grpo-*")):
    rows = [json.loads(l) for l in (d / "grpo" / "metrics.jsonl").read_text().splitlines()] if (d / "grpo" / "metrics.jsonl").exists() else []
    steps = [r for r in rows if "verdict_ok" in r]
    if not steps:
        print(f"| {d.name} | (no steps) |"); continue
    mean = lambda k: statistics.fmean(r[k] for r in steps) if k in steps[0] else float("nan")
    probe = max((r.get("sync_probe_diff", 0) for r in steps), default=0)
    print(f"| {d.name} | {steps[0]['reward_mean']:.3f} -> {steps[-1]['reward_mean']:.3f} | {mean('mismatch_kl'):.2e} | "
          f"{mean('mismatch_abs'):.2e} | {mean('is_clipped_fraction'):.4f} | {probe:.2e} |")
EOF

# 4. tokens/s (~2 min)
step throughput 240 "$PY" bench/rollout_throughput.py --repeats 3
grep '^|' "$OUT/throughput.log" | tee -a "$SUMMARY"

# 5. FSDP on every visible GPU (~1 min)
SFT=(--config configs/tiny.yaml task.sft_size=256 task.eval_size=16 sft.steps=8 sft.batch_size=64 sft.micro_batch_size=16
     sft.checkpoint_every=8)
LAUNCH=("$PY" -m accelerate.commands.launch --config_file configs/accelerate/fsdp.yaml --num_processes "$NGPU")
step sft-one 120 "$PY" -m pipeline.trainers.sft "${SFT[@]}" output_dir="$OUT/one"
step sft-fsdp 180 "${LAUNCH[@]}" -m pipeline.trainers.sft "${SFT[@]}" output_dir="$OUT/fsdp"
step grpo-fsdp 180 "${LAUNCH[@]}" -m pipeline.trainers.grpo --config configs/tiny.yaml --init "$OUT/fsdp/sft/final" \
    task.eval_size=16 grpo.steps=4 grpo.prompts_per_step=16 grpo.checkpoint_every=4 grpo.drop_equal_groups=false \
    output_dir="$OUT/fsdp"
"$PY" - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import sys
from pathlib import Path
from safetensors.torch import load_file
out = Path(sys.argv[1])
try:
    a, b = (load_file(str(out / d / "sft" / "final" / "model.safetensors")) for d in ("one", "fsdp"))
    print("FSDP SFT vs one process, max |dw|:", max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b))
except OSError as e:
    print("FSDP SFT comparison: missing output", e)
EOF
echo "summary: $SUMMARY"
grep -q FAILED "$SUMMARY" && exit 1 || exit 0
