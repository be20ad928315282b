#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy (no other download) and caches it
# outside the clone, keyed by version. Prints the path of the helm binary on stdout;
# progress goes to stderr. Concurrent callers are serialized by a lock.
#
#   hack/helm.sh            # → /var/cache/xdna-whisper/helm/v3.22.0/bin/helm
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}
DIR="$CACHE/helm/$HELM_VERSION"
BIN="$DIR/bin/helm"

mkdir -p "$DIR/bin"
exec 9>"$DIR/.lock"
flock 9

# The -X flags are the ones helm's own Makefile sets: its version, and the Kubernetes
# version that `helm template` and `helm lint` assume by default (that of the k8s.io modules
# helm is built with). .complete records what the cached binary was built from.
HELM_K8S_MINOR=${HELM_K8S_MINOR:-37}
STAMP="$HELM_VERSION k8s-1.$HELM_K8S_MINOR"
if [ ! -x "$BIN" ] || [ "$(cat "$DIR/.complete" 2>/dev/null)" != "$STAMP" ]; then
  echo "helm.sh: building helm $HELM_VERSION from the Go module proxy (once)" >&2
  tmp=$(mktemp -d "$DIR/bin.XXXXXX")
  # Outside any module, so the project's go.mod is not involved.
  (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2)
  mv "$tmp/helm" "$BIN"
  rm -rf "$tmp"
  echo "$STAMP" > "$DIR/.complete"
fi
echo "$BIN"
