#!/usr/bin/env bash
# fx and PyTorch side by side, in one invocation on one machine: the same training step (see
# scripts/bench_torch.py) for cls and seg in fp32 and bf16, then fx's loc step alone (with and
# without activation checkpointing, with its peak memory). Prints img/s
# of each and the ratio fx / PyTorch: machines differ between sessions, ratios within one run do not.
# The fp32 rows run PyTorch a second time with glibc's malloc tuned as fx tunes its own
# (torch-kept), so the table also shows fx against a PyTorch whose allocator keeps freed memory.
#
# BENCH_ARCH (swin_base), BENCH_BATCH (8), BENCH_SIZE (224), BENCH_STEPS (2) choose the size. On a
# CPU without native bf16 (no AVX-512 BF16 / AMX) bf16 is emulated by both frameworks and runs
# ~15x slower than fp32; there "auto" precision picks fp32, and the bf16 rows use BENCH_BF16_ARCH
# (swin_tiny) and one timed step so that the whole bench stays within minutes.
set -euo pipefail
FX=${FX:-target/release/fx-tui}
PY=${PYTHON:-python3}
ARCH=${BENCH_ARCH:-swin_base}
BATCH=${BENCH_BATCH:-8}
SIZE=${BENCH_SIZE:-224}
STEPS=${BENCH_STEPS:-2}
native_bf16=no
grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && native_bf16=yes
nvidia-smi >/dev/null 2>&1 && native_bf16=yes
"$PY" -c "import timm" 2>/dev/null || "$PY" -m pip install --quiet timm==1.0.31 torchvision==0.26.0

# Runs a bench command, shows its output on stderr, prints the img/s of its summary line.
rate() {
  local out
  out=$("$@")
  echo "$out" >&2
  echo "$out" | sed -n 's/^\(train\|torch\): \([0-9.]*\) img\/s.*/\2/p' | tail -1
}
rows=()
for precision in fp32 bf16; do
  arch=$ARCH batch=$BATCH steps=$STEPS
  if [ "$precision" = bf16 ] && [ "$native_bf16" = no ]; then
    arch=${BENCH_BF16_ARCH:-swin_tiny} batch=4 steps=1
  fi
  for task in cls seg; do
    fx=$(rate "$FX" bench --arch "$arch" --task "$task" --batch-size "$batch" --image-size "$SIZE" --steps "$steps" --precision "$precision")
    pt=$(rate "$PY" scripts/bench_torch.py --arch "$arch" --task "$task" --batch-size "$batch" --image-size "$SIZE" --steps "$steps" --precision "$precision")
    # PyTorch again with glibc's malloc tuned as fx tunes it for itself (fx::keep_freed_memory),
    # what preloading jemalloc or tcmalloc gives a PyTorch user: the allocator's share of fx's lead.
    # Emulated bf16 (no native bf16 here) is compute-bound and slow: not run twice.
    ptk=-
    if [ "$precision" = fp32 ] || [ "$native_bf16" = yes ]; then
      ptk=$(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 \
        rate "$PY" scripts/bench_torch.py --arch "$arch" --task "$task" --batch-size "$batch" --image-size "$SIZE" --steps "$steps" --precision "$precision")
    fi
    ratio=$(awk -v a="$fx" -v b="$pt" 'BEGIN { printf "%.2f", a / b }')
    ratiok=-
    [ "$ptk" = - ] || ratiok=$(awk -v a="$fx" -v b="$ptk" 'BEGIN { printf "%.2f", a / b }')
    rows+=("$(printf '%-5s %-5s %-11s %5s %10s %10s %8s %10s %8s' "$task" "$precision" "$arch" "$batch" "$fx" "$pt" "$ratio" "$ptk" "$ratiok")")
  done
done
# fx's loc step alone (no PyTorch DINO here): img/s and peak host memory, without and with
# train.activation_checkpointing; batch 24 without it needs ~33 GB of host memory on a CPU.
loc=()
for batch in 8 24; do
  for ac in "" --activation-checkpointing; do
    label="loc   auto  $ARCH  batch $batch${ac:+ checkpointed}"
    if [ "$batch" = 24 ] && [ -z "$ac" ] && [ "$(awk '/MemTotal/ { print int($2 / 1048576) }' /proc/meminfo)" -lt 40 ] && ! nvidia-smi >/dev/null 2>&1; then
      loc+=("$label: skipped, needs ~33 GB of host memory on a CPU (this machine has less)")
      continue
    fi
    out=$("$FX" bench --arch "$ARCH" --task loc --batch-size "$batch" --image-size "$SIZE" --steps "$STEPS" --precision auto $ac)
    echo "$out" >&2
    r=$(echo "$out" | sed -n 's/^train: \([0-9.]*\) img\/s.*/\1/p')
    m=$(echo "$out" | sed -n 's/^peak host memory: \([0-9.]*\) GB.*/\1/p')
    loc+=("$label: fx $r img/s, peak host memory $m GB")
  done
done
echo
echo "fx vs PyTorch, training step img/s (native bf16 on this machine: $native_bf16)"
printf '%-5s %-5s %-11s %5s %10s %10s %8s %10s %8s\n' task prec arch batch fx torch fx/torch torch-kept fx/kept
echo "(torch-kept: PyTorch with glibc's mmap and trim thresholds at 1 GiB, as fx sets them for itself)"
printf '%s\n' "${rows[@]}" "${loc[@]}"
