#!/usr/bin/env bash
# fuzz.sh - runs each libFuzzer target (tests/fuzz, built by `make fuzz` into build-fuzz) for
# FUZZ_SECONDS (default 60) on a fresh copy of its seed corpus and regression inputs, one target
# at a time, and prints a table: executions, exec/s, coverage (cov/ft), corpus size, result.
# Exits non-zero when any target finds a crash, leak, timeout or sanitizer report; the input is
# kept in $FUZZ_WORK/<target>/ (crash-*, leak-*, timeout-*) with the target's log.
#
#   scripts/fuzz.sh [target...]     default: every fuzz_* executable in the build
#   FUZZ_SECONDS=600 FUZZ_BUILD=build-fuzz FUZZ_WORK=build-fuzz/fuzz-work scripts/fuzz.sh startup
#   FUZZ_SEED=1 scripts/fuzz.sh      libFuzzer's random seed fixed (CI): runs start alike but part
#                                    ways after a few hundred inputs (libFuzzer is not bit-for-bit
#                                    repeatable), so a green run here does not promise a green CI;
#                                    a finding's input is kept (the default: a new seed each run)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
BUILD=${FUZZ_BUILD:-build-fuzz}
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
SRC=tests/fuzz

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for exe in "$BUILD"/tests/fuzz/fuzz_*; do
    [[ -x $exe && ! -d $exe ]] && targets+=("${exe##*/fuzz_}")
  done
fi
if ((${#targets[@]} == 0)); then
  echo "fuzz.sh: no fuzz targets in $BUILD/tests/fuzz (make fuzz builds them)" >&2
  exit 2
fi

# libFuzzer stops at the first finding; leaks count (ASan's leak check after each input).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
printf '%-16s %12s %8s %7s %8s %10s  %s\n' target executions exec/s cov ft corpus result
for t in "${targets[@]}"; do
  exe=$BUILD/tests/fuzz/fuzz_$t
  if [[ ! -x $exe ]]; then
    echo "fuzz.sh: no such target: $t ($exe)" >&2
    failed+=("$t")
    continue
  fi
  dir=$WORK/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  for d in "$SRC/corpus/$t" "$SRC/regressions/$t"; do
    [[ -d $d ]] && find "$d" -maxdepth 1 -type f ! -name README.md -exec cp {} "$dir/corpus/" \;
  done
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$dir/")
  [[ -f $SRC/dict/$t.dict ]] && args+=(-dict="$SRC/dict/$t.dict")
  [[ -n ${FUZZ_SEED:-} ]] && args+=(-seed="$FUZZ_SEED")
  "$exe" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  result=ok
  if ((rc != 0)); then
    result="FAILED (exit $rc, see $dir/log)"
    failed+=("$t")
  fi
  printf '%-16s %12s %8s %7s %8s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$result"
  if ((rc != 0)); then
    grep -E 'ERROR: |SUMMARY: |fuzz check failed|Test unit written' "$dir/log" | head -8 | sed 's/^/    /'
  fi
done

if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]}" >&2
  exit 1
fi
