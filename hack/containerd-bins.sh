#!/usr/bin/env bash
# Builds containerd, its runc shim and ctr from the Go module proxy (no other
# download) and caches them outside the clone, keyed by version. The e2e node runs
# them instead of Debian's containerd 1.6, which cannot apply CDI specs (1.7 can:
# enable_cdi); Debian's runc stays.
#
#   hack/containerd-bins.sh     # → /var/cache/xdna-whisper/containerd/v1.7.35/bin
#
# It prints the directory holding containerd, containerd-shim-runc-v2 and ctr on
# stdout; progress goes to stderr. Concurrent callers are serialized by a lock.
#
# How: `go install pkg@version` refuses containerd's module (its go.mod has an
# exclude directive), so a throwaway wrapper module requires it and carries its
# exclude and replace directives over; one `go build` makes the three commands.
# CGO is off and the snapshotters the node does not use (btrfs, devmapper, zfs,
# aufs) and OpenTelemetry tracing are left out by build tags.
set -euo pipefail

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v1.7.35}
CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}
DIR="$CACHE/containerd/$CONTAINERD_VERSION"
BIN="$DIR/bin"
WRAP="$DIR/wrapper"
MOD=github.com/containerd/containerd
CMDS="containerd containerd-shim-runc-v2 ctr"
TAGS="urfave_cli_no_docs no_btrfs no_devmapper no_zfs no_aufs no_tracing"

log() { echo "containerd-bins: $*" >&2; }

mkdir -p "$BIN"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another containerd-bins.sh holds $DIR/.lock; waiting"
  flock 9
fi

# STAMP records what the cached binaries were built from.
STAMP="$CONTAINERD_VERSION $CMDS tags=$TAGS"

# wrapper_module writes (idempotently) the module that builds containerd's commands.
wrapper_module() {
  [ -f "$WRAP/go.sum" ] && [ "$(cat "$WRAP/.complete" 2>/dev/null)" = "$STAMP" ] && return 0
  rm -rf "$WRAP" && mkdir -p "$WRAP"
  local gomod
  gomod=$(cd "$WRAP" && go mod download -json "$MOD@$CONTAINERD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "go mod download $MOD@$CONTAINERD_VERSION gave no go.mod"; exit 1; }
  {
    printf 'module xdna-whisper.local/containerd-wrapper\n\ngo 1.26\n\nrequire %s %s\n\n' "$MOD" "$CONTAINERD_VERSION"
    # Single-line and block forms of exclude and replace, as containerd's go.mod has them.
    awk '/^(exclude|replace) \(/ { blk = 1 } blk { print; if ($0 ~ /^\)/) blk = 0; next }
         /^(exclude|replace) / { print }' "$gomod"
  } >"$WRAP/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in $CMDS; do printf '\t_ "%s/cmd/%s"\n' "$MOD" "$c"; done
    printf ')\n'
  } >"$WRAP/tools.go"
  (cd "$WRAP" && GOFLAGS=-mod=mod go mod tidy >&2)
  echo "$STAMP" >"$WRAP/.complete"
}

# built: every command is in $BIN, built from $STAMP, and containerd says its version.
built() {
  local c
  for c in $CMDS; do [ -x "$BIN/$c" ] || return 1; done
  [ "$(cat "$BIN/.complete" 2>/dev/null)" = "$STAMP" ] &&
    "$BIN/containerd" --version 2>/dev/null | grep -qF " $CONTAINERD_VERSION "
}

if ! built; then
  start=$(date +%s)
  log "building $CMDS $CONTAINERD_VERSION from the Go module proxy (once)"
  wrapper_module
  tmp=$(mktemp -d "$DIR/build.XXXXXX")
  pkgs=()
  for c in $CMDS; do pkgs+=("$MOD/cmd/$c"); done
  # The -X flags are the version containerd's own Makefile stamps in.
  (cd "$WRAP" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -tags "$TAGS" \
    -ldflags "-s -w -X $MOD/version.Version=$CONTAINERD_VERSION -X $MOD/version.Revision=module-proxy" \
    -o "$tmp/" "${pkgs[@]}")
  for c in $CMDS; do mv -f "$tmp/$c" "$BIN/$c"; done
  rmdir "$tmp"
  echo "$STAMP" >"$BIN/.complete"
  log "built $CMDS in $(($(date +%s) - start))s"
fi
echo "$BIN"
