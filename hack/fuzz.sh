#!/usr/bin/env bash
# Runs one Go fuzz target for a bounded time and fails only on a real finding.
#
#   hack/fuzz.sh PKG TARGET FUZZTIME [go test flags...]
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" when
# -fuzztime runs out while a worker is mid-input (golang/go#75804, fixed in Go 1.27):
# nothing failed and nothing was written. Such a run counts as passed once the
# target's corpus (seeds and testdata/fuzz/TARGET) replays cleanly; a run that
# wrote a new failing input under testdata/fuzz/TARGET, or failed any other way,
# fails.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 PKG TARGET FUZZTIME [go test flags...]" >&2; exit 2; }
pkg=$1 target=$2 fuzztime=$3
shift 3
GO=${GO:-go}
corpus="$pkg/testdata/fuzz/$target"

count_inputs() { if [ -d "$corpus" ]; then find "$corpus" -type f | wc -l; else echo 0; fi; }

before=$(count_inputs)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$@" "$pkg" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] && exit 0

after=$(count_inputs)
if [ "$after" -eq "$before" ] &&
  grep -A1 -- "^--- FAIL: $target " "$log" | tail -n 1 | grep -qx '[[:space:]]*context deadline exceeded'; then
  echo "fuzz.sh: $target stopped with a bare 'context deadline exceeded' and wrote no input (Go's coordinator race, golang/go#75804); replaying its corpus"
  "$GO" test -run "^$target\$" -count=1 "$pkg"
  exit 0
fi
echo "fuzz.sh: $target failed (exit $rc; failing inputs under $corpus: $before before, $after after)" >&2
exit "$rc"
