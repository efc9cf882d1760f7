#!/usr/bin/env bash
# The can-fail check of tests/README.md: run each quality test with MEDSYNTH_TEST_UNTRAINED=1, which makes
# the `trained` fixture (tests/conftest.py) hand out an untrained generator of the trained one's shape, and
# show that each fails, on its quality assertion (the line named beside it below). Exit 0 only if all do.
# Run from the repository root: bash scripts/check_quality_tests_fail.sh (PYTEST=... for another pytest).
set -uo pipefail
cd "$(dirname "$0")/.."
pytest=${PYTEST:-.venv/bin/pytest}
# test id | the failing assertion's text, as pytest prints it after ">"
checks=(
  "tests/test_synthesize_cli.py::test_synthesize_writes_on_the_source_grid_with_metrics_and_maps|base.psnr + 2"
  "tests/test_compare.py::test_compare_gives_the_figures_synthesize_gives_one_csv_row_each_and_the_montage|figure[\"psnr\"] + 1"
  "tests/test_train.py::test_evaluate_writes_its_tables_and_the_run_beats_its_untrained_start|untrained[\"psnr\"] + 2"
)
failures=0
for check in "${checks[@]}"; do
  test=${check%%|*}
  line=${check#*|}
  log=$(mktemp)
  start=$SECONDS
  MEDSYNTH_TEST_UNTRAINED=1 nice -n 15 "$pytest" -q -p no:cacheprovider "$test" >"$log" 2>&1
  code=$?
  failed_at=$(grep -m1 -E '^>' "$log" | sed -E 's/^> +//')
  if [ "$code" -eq 1 ] && grep -qE '^(FAILED|=+ 1 failed)' "$log" && [[ $failed_at == *"$line"* ]]; then
    echo "fails as it must ($((SECONDS - start)) s): $test"
    echo "    at:  $failed_at"
    grep -m1 -E '^E ' "$log" | cut -c1-200 | sed 's/^/    /'
  else
    echo "DID NOT FAIL ON ITS QUALITY ASSERTION (pytest exit $code): $test; its output: $log"
    failures=$((failures + 1))
  fi
done
if [ "$failures" -eq 0 ]; then
  echo "all ${#checks[@]} quality tests fail with untrained generators"
else
  echo "$failures of ${#checks[@]} quality tests did not fail with untrained generators"
fi
exit $((failures > 0))
