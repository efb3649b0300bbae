#!/usr/bin/env bash
# Runs every fuzz target briefly (default 20 s each) from the seed corpus:
# a CI smoke test that the targets build and nothing obvious crashes. Long
# runs and their results are described in RELIABILITY.md.
#
#   bash fuzz/smoke.sh                 # 20 s per target
#   SECONDS_PER_TARGET=300 bash fuzz/smoke.sh
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly
# compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# No sanitizer: rolecall forbids unsafe code, so ASan would only slow the
# search down. New inputs go to fuzz/work/<target> (ignored by git); the
# seed corpus fuzz/corpus/<target> is only read. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-20}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2; exit 1; }
cargo fuzz build -s none >&2
for target in snapshot authz delta check_wire; do
  mkdir -p "fuzz/work/$target"
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
  echo "fuzz $target: ${SECONDS_PER_TARGET}s" >&2
  cargo fuzz run -s none "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${dict[@]}" 2>&1 | grep -E '^(Done|stat::number_of_executed_units)|ERROR|panicked' >&2
done
echo "fuzz smoke: every target ran ${SECONDS_PER_TARGET}s without a crash" >&2
