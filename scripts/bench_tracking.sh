#!/usr/bin/env bash
# The tracking side at the paper's scale (issue #19): a fabricated 20-cycle run of 20 (dataset,
# task) pairs with teacher, student and per-label values (40,600 metric rows), then what the
# viewer pays for it (read, first screen, redraws, memory) and export / report times and peak
# memory. Everything runs in fx-light, the process without libtorch that fx-tui uses for them.
set -euo pipefail
LIGHT=${1:-target/release/fx-light}
OUT=target/paper-scale
rm -rf "$OUT"
for i in $(seq 1 20); do "$LIGHT" fabricate "$OUT/run-$i" --cycles 20 > /dev/null; done
"$LIGHT" fabricate "$OUT/run-1" --cycles 20
"$LIGHT" bench "$OUT/run-1"
measure() {
    local what=$1; shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "$what: %e s, peak %M KB" "$@" > /dev/null
    else
        local t0=$(date +%s.%N); "$@" > /dev/null; echo "$what: $(echo "$(date +%s.%N) - $t0" | bc) s"
    fi
}
measure "export (charts + tables, teacher and student)" "$LIGHT" export "$OUT/run-1" --out "$OUT/export" --student
measure "export --cycles last:2" "$LIGHT" export "$OUT/run-1" --out "$OUT/export-last2" --cycles last:2
measure "report over 20 runs" "$LIGHT" report "$OUT"/run-* --out "$OUT/report"
