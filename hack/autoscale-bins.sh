#!/usr/bin/env bash
# Builds the autoscaling e2e's Prometheus and KEDA (operator + metrics API server)
# from the Go module proxy (no other downloads) and caches them outside the clone,
# keyed by version.
#
#   hack/autoscale-bins.sh [prometheus|keda-operator|keda-adapter|keda-crds ...]
#
# With no arguments it builds all three binaries. It prints one absolute path per
# argument on stdout, in argument order (keda-crds: the directory of KEDA's CRD
# YAML of the same version); progress goes to stderr. Concurrent
# invocations are serialized by a lock per tool and version.
#
# How: a throwaway wrapper module per tool requires the upstream module and
# builds its commands. KEDA's go.mod carries a replace directive (and an
# exclude), which apply only in the main module, so the wrapper repeats both
# (read from KEDA's own go.mod). Prometheus is built with its service-discovery
# plugins removed except Kubernetes (build tags remove_all_sd,enable_kubernetes_sd).
set -euo pipefail

PROM_VERSION=${PROM_VERSION:-v0.316.0}
KEDA_VERSION=${KEDA_VERSION:-v2.21.0}
CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}

log() { echo "autoscale-bins: $*" >&2; }

bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(prometheus keda-operator keda-adapter)

# lock DIR: serialize builders of one tool version (fd 9 stays open until exit).
lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if ! flock -n 9; then
    log "another autoscale-bins.sh holds $1/.lock; waiting"
    flock 9
  fi
}

# gomod_of MODULE@VERSION: the path of the module's go.mod in the module cache.
gomod_of() {
  go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p'
}

# tools_go PKG...: a build-tagged file importing the given commands, so that
# `go mod tidy` records everything they need in go.sum.
tools_go() {
  printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
  printf ')\n'
}

prometheus() {
  local dir="$CACHE/prometheus/$PROM_VERSION" wrap
  wrap="$dir/wrapper"
  [ -x "$dir/bin/prometheus" ] && return 0
  lock "$dir"
  [ -x "$dir/bin/prometheus" ] && return 0
  local start
  start=$(date +%s)
  if [ ! -f "$wrap/.complete" ]; then
    rm -rf "$wrap" && mkdir -p "$wrap"
    printf 'module xdna-whisper.local/prometheus-wrapper\n\ngo 1.26\n\nrequire github.com/prometheus/prometheus %s\n' \
      "$PROM_VERSION" > "$wrap/go.mod"
    tools_go github.com/prometheus/prometheus/cmd/prometheus > "$wrap/tools.go"
    (cd "$wrap" && GOFLAGS=-mod=mod go mod tidy >&2)
    touch "$wrap/.complete"
  fi
  mkdir -p "$dir/bin"
  local v=github.com/prometheus/common/version
  (cd "$wrap" && CGO_ENABLED=0 go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $v.Version=${PROM_VERSION#v} -X $v.Branch=module-proxy" \
    -o "$dir/bin/.prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus)
  mv -f "$dir/bin/.prometheus.tmp" "$dir/bin/prometheus"
  log "built prometheus $PROM_VERSION in $(($(date +%s) - start))s"
}

keda() {
  local dir="$CACHE/keda/$KEDA_VERSION" wrap mod=github.com/kedacore/keda/v2
  wrap="$dir/wrapper"
  [ -x "$dir/bin/keda-operator" ] && [ -x "$dir/bin/keda-adapter" ] && [ -d "$dir/crds" ] && return 0
  lock "$dir"
  [ -x "$dir/bin/keda-operator" ] && [ -x "$dir/bin/keda-adapter" ] && [ -d "$dir/crds" ] && return 0
  local start
  start=$(date +%s)
  if [ ! -f "$wrap/.complete" ]; then
    rm -rf "$wrap" && mkdir -p "$wrap"
    local gomod
    gomod=$(cd "$wrap" && gomod_of "$mod@$KEDA_VERSION")
    {
      printf 'module xdna-whisper.local/keda-wrapper\n\ngo 1.26\n\nrequire %s %s\n\n' "$mod" "$KEDA_VERSION"
      # KEDA's single-line replace and exclude directives, verbatim.
      grep -E '^(replace|exclude) ' "$gomod" || true
    } > "$wrap/go.mod"
    tools_go "$mod/cmd/operator" "$mod/cmd/adapter" > "$wrap/tools.go"
    (cd "$wrap" && GOFLAGS=-mod=mod go mod tidy >&2)
    touch "$wrap/.complete"
  fi
  local tmp="$dir/bin/.build"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$wrap" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $mod/version.Version=$KEDA_VERSION" \
    -o "$tmp/" "$mod/cmd/operator" "$mod/cmd/adapter")
  # KEDA's CRDs, from the same module version, for clusters the binaries run against.
  local src
  src=$(cd "$wrap" && go list -m -f '{{.Dir}}' "$mod")
  rm -rf "$dir/crds" && mkdir -p "$dir/crds"
  cp "$src"/config/crd/bases/*.yaml "$dir/crds/" && chmod 0644 "$dir/crds"/*.yaml
  mv -f "$tmp/operator" "$dir/bin/keda-operator"
  mv -f "$tmp/adapter" "$dir/bin/keda-adapter"
  rmdir "$tmp"
  log "built keda-operator, keda-adapter $KEDA_VERSION in $(($(date +%s) - start))s"
}

for b in "${bins[@]}"; do
  case "$b" in
    prometheus) prometheus ;;
    keda-operator | keda-adapter | keda-crds) keda ;;
    *) log "unknown binary $b (want prometheus, keda-operator, keda-adapter or keda-crds)"; exit 2 ;;
  esac
done
for b in "${bins[@]}"; do
  case "$b" in
    prometheus) echo "$CACHE/prometheus/$PROM_VERSION/bin/prometheus" ;;
    keda-crds) echo "$CACHE/keda/$KEDA_VERSION/crds" ;;
    *) echo "$CACHE/keda/$KEDA_VERSION/bin/$b" ;;
  esac
done
