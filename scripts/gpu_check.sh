#!/usr/bin/env bash
# The device check for the days a GPU is lent (see ../shared/TOOLCHAIN.md): build here, carry
# target/release/fx-tui, run this there. Prints the fx training step's img/s on CUDA in bf16 and
# fp32 for cls / seg / loc, the model FLOP utilisation of the cls step, and the PyTorch side where
# timm is importable (the lent machine has torch but no package registry).
#
# MFU counts the cls step as 4 forward passes of Swin-B at 224 px (student forward + backward ≈ 3,
# teacher forward 1) at timm's 15.47 GMACs each: 123.8 GFLOP per image. PEAK_TFLOPS is the
# device's dense bf16 peak (H200: 989).
set -uo pipefail
FX=${FX:-target/release/fx-tui}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
BATCH=${BATCH:-24}
STEPS=${STEPS:-10}
TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"
rate() { sed -n 's/^\(train\|torch\): \([0-9.]*\) img\/s.*/\2/p' | tail -1; }
for precision in bf16 fp32; do
  for task in cls seg loc; do
    out=$("$FX" bench --device cuda --task "$task" --precision "$precision" --batch-size "$BATCH" --steps "$STEPS" 2>&1)
    echo "$out" | grep -v '^  step'
    fx=$(echo "$out" | rate)
    line="$task $precision batch $BATCH: fx ${fx:-?} img/s"
    if [ "$task" = cls ] && [ -n "$fx" ]; then
      line="$line, MFU $(awk -v r="$fx" -v p="$PEAK_TFLOPS" 'BEGIN { printf "%.1f %%", 100 * r * 123.8e9 / (p * 1e12) }')"
    fi
    if [ "$task" != loc ] && python3 -c "import timm" 2>/dev/null; then
      pt=$(python3 scripts/bench_torch.py --device cuda --task "$task" --precision "$precision" --batch-size "$BATCH" --steps "$STEPS" | rate)
      line="$line, PyTorch ${pt:-?} img/s, fx/PyTorch $(awk -v a="$fx" -v b="$pt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')"
    fi
    summary+=("$line")
  done
done
# Data parallel on the lent GPUs: NCCL needs one GPU per rank, so a 2-worker job runs where there
# are two; the one-rank NCCL sum is the shim's c10d test (carry its binary as C10D_TEST).
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ -n "${C10D_TEST:-}" ]; then
  "$C10D_TEST" --test-threads 1 nccl 2>&1 | tail -3
  summary+=("c10d NCCL one-rank test: exit $?")
fi
if [ "$gpus" -ge 2 ]; then
  dp=$(mktemp -d)
  out=$("$FX" experiments/demo.toml --headless --device cuda --nproc-per-node 2 --set train.cycles=1 --set train.sync_batchnorm=true --set output_dir="$dp" 2>&1)
  echo "$out" | tail -5
  summary+=("2 workers (NCCL): $(echo "$out" | grep -o '[0-9.]* img/s ([0-9] ranks[^)]*)' | tail -1)")
fi
printf '%s\n' "" "summary:" "${summary[@]}"
