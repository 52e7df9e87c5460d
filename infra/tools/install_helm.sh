#!/usr/bin/env bash
# Install the pinned helm into a repo-local bin folder (default .crowdsound/bin, git-ignored)
# by building it from the Go module proxy: `go install helm.sh/helm/v3/cmd/helm@<pin>`.
# Idempotent: does nothing when that folder already has helm at the pinned version.
# Needs Go (1.24+). Go's module and build caches (GOMODCACHE, GOCACHE) make a rebuild quick.
#
#   infra/tools/install_helm.sh            # -> .crowdsound/bin/helm
#   BIN_DIR=/usr/local/bin infra/tools/install_helm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# helm's own Makefile stamps these; without them `helm version` says v3.22 and helm assumes
# Kubernetes 1.20 for capabilities and lint (helm v3.22.0 builds against client-go v0.37 -> 1.37).
K8S_MAJOR=1
K8S_MINOR=37
BIN_DIR="${BIN_DIR:-$PWD/.crowdsound/bin}"
helm_bin="$BIN_DIR/helm"

if [ -x "$helm_bin" ] && [ "$("$helm_bin" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "helm $HELM_VERSION already in $BIN_DIR"
  exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build helm (https://go.dev/dl/ or apt-get install golang)" >&2; exit 1; }

mkdir -p "$BIN_DIR"
start=$(date +%s)
echo "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) into $BIN_DIR ..."
GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w \
  -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$K8S_MAJOR \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$K8S_MAJOR \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "helm $("$helm_bin" version --template '{{.Version}}') installed in $(( $(date +%s) - start )) s"
