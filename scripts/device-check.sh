#!/usr/bin/env bash
# The device check (issue 33): what a lent GPU machine runs in ONE call of at most 8 minutes, on a
# release binary built on the 2-core machine and carried there (no network, no Rust toolchain
# needed on the device; the Vulkan loader from Debian's libvulkan1):
#
#   1. `subspace-lab bench --backend gpu --gpu-only --json` for fc-tanh, cnn-relu and the
#      Transformer: gradient, HVP (ms, GFLOP/s, counted flops and the dense-GEMM limit), top-10,
#      one warm Dom-SGD step and its per-step transfers;
#   2. the GPU parity tests, as a prebuilt test binary (`cargo test --release --test gpu_parity
#      --no-run` prints its path; carried like the main binary) with SUBSPACE_LAB_REQUIRE_GPU=1;
#   3. the timed quick fig1 (`reproduce fig1 --quick --backend gpu`).
#
# It writes bench-<model>.json, gpu_parity.txt, fig1-quick/ and summary.md (a short table) under
# $OUT, and stops each step at its share of the budget so the call ends in time.
#
# Preparing the carried folder on the 2-core machine (ignored by git, under 64 MiB):
#   cargo build --release && cargo test --release --test gpu_parity --no-run
#   scripts/device-check.sh --stage dist/device     # stripped binaries + the data caches
# and on the device (the run tool's `carry: ["dist/device"]`):
#   scripts/device-check.sh --dir dist/device
#
# --dry: the small mode (a few samples, one run, the parity binary only listed, fig1 skipped),
# which runs on lavapipe here as the test tests/device_check.rs. Without an adapter the check
# prints why and exits 0 (skipped) unless SUBSPACE_LAB_REQUIRE_GPU=1 (then 2).
set -u

DIR=""
DRY=0
STAGE=""
BIN="${SUBSPACE_LAB_BIN:-}"
PARITY="${GPU_PARITY_BIN:-}"
BUDGET="${DEVICE_CHECK_BUDGET_S:-450}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        --dry) DRY=1; shift ;;
        --stage) STAGE="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --parity) PARITY="$2"; shift 2 ;;
        --budget) BUDGET="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "device-check: unknown argument $1" >&2; exit 64 ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# --stage DIR: copy the stripped release binary, the newest gpu_parity test binary and the data
# caches into DIR (run here, before the device call).
if [ -n "$STAGE" ]; then
    mkdir -p "$STAGE/data"
    src_bin="${BIN:-$ROOT/target/release/subspace-lab}"
    src_par="${PARITY:-$(ls -t "$ROOT"/target/release/deps/gpu_parity-* 2>/dev/null | grep -v '\.d$' | head -1)}"
    [ -x "$src_bin" ] || { echo "device-check: no release binary at $src_bin" >&2; exit 1; }
    [ -n "$src_par" ] && [ -x "$src_par" ] || { echo "device-check: no gpu_parity test binary (cargo test --release --test gpu_parity --no-run)" >&2; exit 1; }
    strip -o "$STAGE/subspace-lab" "$src_bin"
    strip -o "$STAGE/gpu_parity" "$src_par"
    data="${SUBSPACE_LAB_DATA:-$HOME/.cache/subspace-lab}"
    cp "$data"/mnist5k-v1.bin "$data"/cifar10-5k-v1.bin "$data"/sst2-train-first1000.tsv "$STAGE/data/"
    du -sh "$STAGE"
    exit 0
fi

if [ -n "$DIR" ]; then
    BIN="${BIN:-$DIR/subspace-lab}"
    PARITY="${PARITY:-$DIR/gpu_parity}"
    [ -d "$DIR/data" ] && export SUBSPACE_LAB_DATA="$DIR/data"
fi
BIN="${BIN:-$ROOT/target/release/subspace-lab}"
OUT="${OUT:-$ROOT/device-check-out}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }
# A step's time limit: its cap, or what is left of the budget if less (at least 1 s).
cap() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $((l > 1 ? l : 1)) || echo "$1"; }
# A number with $2 decimals, or — (null, NaN, absent).
fmt() { awk -v x="$1" -v p="$2" 'BEGIN { if (x ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) printf("%." p "f", x); else printf("—") }'; }
# A field of a one-line JSON object on stdin.
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2; }

{
    echo "device check $(date -u +%FT%TZ), budget ${BUDGET} s, dry=${DRY}"
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    nproc
} > "$OUT/machine.txt" 2>&1

if [ "$DRY" = 1 ]; then
    SAMPLES=(--samples 40 --hvp-only); RUNS=1; GEMM=128
else
    SAMPLES=(); RUNS=3; GEMM=4096
fi

# 1. bench, one model after another (the first also tells whether there is an adapter).
echo "| model | backend | HVP ms | GFLOP/s | counted GFLOP | limit ms | × limit | dense GEMM GFLOP/s | top-10 ms | step ms (HVPs) | uploads / read-backs per step |" > "$OUT/summary.md"
echo "|---|---|---|---|---|---|---|---|---|---|---|" >> "$OUT/summary.md"
for model in fc-tanh cnn-relu transformer; do
    limit=$(cap $([ "$DRY" = 1 ] && echo 120 || echo 110))
    timeout "$limit" "$BIN" bench --model "$model" --backend gpu --gpu-only --runs "$RUNS" \
        --gemm-size "$GEMM" "${SAMPLES[@]}" --json > "$OUT/bench-$model.json" 2> "$OUT/bench-$model.err"
    rc=$?
    if [ $rc -ne 0 ] && grep -qi "adapter" "$OUT/bench-$model.err"; then
        echo "device-check: no GPU adapter: $(tail -1 "$OUT/bench-$model.err")" | tee "$OUT/skipped.txt"
        [ "${SUBSPACE_LAB_REQUIRE_GPU:-0}" = 1 ] && exit 2
        exit 0
    fi
    j="$OUT/bench-$model.json"
    if [ $rc -ne 0 ]; then
        echo "| $model | failed (exit $rc, see bench-$model.err) |" >> "$OUT/summary.md"
        continue
    fi
    tr=$(grep -o '"step_transfers":{[^}]*}' "$j")
    f() { fmt "$(field "$1" < "$j")" "$2"; }
    up=$(echo "$tr" | field uploads); rb=$(echo "$tr" | field readbacks)
    echo "| $model | $(field backend < "$j" | tr -d '"') | $(f hvp_ms 1) | $(f hvp_gflops 1) | $(fmt "$(field hvp_flops < "$j" | awk '{print $1/1e9}')" 2) | $(f hvp_limit_ms 1) | $(f hvp_vs_limit 2) | $(f dense_gemm_gflops 0) | $(f top10_ms 0) | $(f step_ms 1) ($(f step_hvps 1)) | ${up:-—} / ${rb:-—} |" >> "$OUT/summary.md"
done

# 2. the GPU parity tests (a prebuilt test binary).
if [ -n "$PARITY" ] && [ -x "$PARITY" ]; then
    if [ "$DRY" = 1 ]; then
        "$PARITY" --list > "$OUT/gpu_parity.txt" 2>&1
        echo "gpu_parity: $(grep -c ': test' "$OUT/gpu_parity.txt") tests listed (dry run)" >> "$OUT/summary.md"
    else
        SUBSPACE_LAB_REQUIRE_GPU=1 timeout "$(cap 120)" "$PARITY" --test-threads=1 > "$OUT/gpu_parity.txt" 2>&1
        echo "gpu_parity: exit $?, $(grep -E '^test result' "$OUT/gpu_parity.txt" | tail -1)" >> "$OUT/summary.md"
    fi
else
    echo "gpu_parity: no test binary given (--parity, GPU_PARITY_BIN or --dir)" >> "$OUT/summary.md"
fi

# 3. the timed quick fig1.
if [ "$DRY" = 1 ]; then
    echo "fig1 --quick: skipped (dry run)" >> "$OUT/summary.md"
else
    t0=$SECONDS
    timeout "$(cap 200)" "$BIN" reproduce fig1 --quick --backend gpu --out "$OUT/fig1-quick" \
        > "$OUT/fig1-quick.txt" 2>&1
    rc=$?
    echo "fig1 --quick: exit $rc in $((SECONDS - t0)) s; $(grep -iE 'holds|verdict' "$OUT/fig1-quick.txt" | tail -1)" >> "$OUT/summary.md"
fi
echo "total: $((SECONDS - START)) s" >> "$OUT/summary.md"
cat "$OUT/summary.md"
