#!/usr/bin/env bash
# Runs golangci-lint, built once from the Go module proxy (no other download) and cached
# outside the clone, keyed by version; the arguments go to golangci-lint. Progress of the
# one-time build goes to stderr. Concurrent first builds are serialized by a lock.
#
#   hack/golangci-lint.sh run ./...   # /var/cache/xdna-whisper/tools/golangci-lint-v2.15.0/golangci-lint
set -euo pipefail

GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}
CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}
DIR="$CACHE/tools/golangci-lint-$GOLANGCI_LINT_VERSION"
BIN="$DIR/golangci-lint"

# The binary's own version report is the stamp: "golangci-lint has version 2.15.0 built with ...".
built() { [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "has version ${GOLANGCI_LINT_VERSION#v} "; }

if ! built; then
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  if ! built; then
    echo "golangci-lint.sh: building golangci-lint $GOLANGCI_LINT_VERSION from the Go module proxy (once)" >&2
    tmp=$(mktemp -d "$DIR/bin.XXXXXX")
    # Outside any module, so the project's go.mod is not involved.
    (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
      go install -trimpath "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION" >&2)
    mv "$tmp/golangci-lint" "$BIN"
    rm -rf "$tmp"
  fi
  exec 9>&-
fi
exec "$BIN" "$@"
