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
printf '%s\n' "" "summary:" "${summary[@]}"
