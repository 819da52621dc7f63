#!/usr/bin/env bash
# Builds the real control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) and the
# Kubeflow controllers (training-operator, Trainer, JobSet, Kueue) from their Go modules at pinned
# releases, into a cache outside the clone keyed by the pinned versions and go.sum:
#   ${HUBFLOW_KUBE_BIN_CACHE:-~/.cache/hubflow/kube-bin}/<key>/
# A second run builds nothing. Prints the binary directory on stdout (progress goes to stderr).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-$(command -v go)}

# The pins. Kubernetes and etcd come from go/go.mod + go/go.sum (the staging modules replaced by
# their v0.35.4); JobSet from go-jobset/go.mod + go.sum (its own dependency versions); the other
# controllers are `go install`ed at their tags with their own go.mod and go.sum, which the tag fixes
# and the checksum database verifies.
K8S_VERSION=v1.35.4
TRAINING_OPERATOR_VERSION=v1.9.4
TRAINER_VERSION=v2.3.0
JOBSET_VERSION=v0.12.0   # the JobSet that Trainer v2.3.0 pins (also in go-jobset/go.mod)
KUEUE_VERSION=v0.17.0

key=$( { cat "$HERE/build.sh" "$HERE"/go/go.mod "$HERE"/go/go.sum "$HERE"/go/etcd/main.go \
          "$HERE"/go-jobset/go.mod "$HERE"/go-jobset/go.sum; "$GO" version; } | sha256sum | cut -c1-16)
ROOT=${HUBFLOW_KUBE_BIN_CACHE:-$HOME/.cache/hubflow/kube-bin}
OUT=$ROOT/$key
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$ROOT"
exec 9>"$ROOT/.lock-$key"
flock 9
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$OUT"
export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0
start=$(date +%s)
log() { echo "[build.sh $(( $(date +%s) - start ))s] $*" >&2; }

if [ ! -x "$OUT/kubectl" ] || [ ! -x "$OUT/etcd" ]; then
  log "kubernetes $K8S_VERSION + etcd"
  maj=${K8S_VERSION#v}; maj=${maj%%.*}; min=${K8S_VERSION#v*.}; min=${min%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$HERE/go" && "$GO" build -mod=readonly -ldflags="$ld" -o "$OUT/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd)
fi
inst() {  # name package@version
  local name=$1 pkg=$2
  [ -x "$OUT/$name" ] && return 0
  log "$pkg"
  local tmp; tmp=$(mktemp -d "$OUT/.gobin.XXXX")
  (cd "$tmp" && GOBIN="$tmp" "$GO" install -ldflags="-s -w" "$pkg")
  mv "$tmp"/* "$OUT/$name"; rmdir "$tmp"
}
inst training-operator github.com/kubeflow/training-operator/cmd/training-operator.v1@$TRAINING_OPERATOR_VERSION
inst trainer-controller-manager github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager@$TRAINER_VERSION
if [ ! -x "$OUT/jobset" ]; then
  # Through go-jobset/go.mod (the proxy refuses JobSet's version list, which `go install` reads).
  log "sigs.k8s.io/jobset $JOBSET_VERSION"
  (cd "$HERE/go-jobset" && "$GO" build -mod=readonly -ldflags="-s -w" -o "$OUT/jobset" sigs.k8s.io/jobset)
fi
inst kueue sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION
cat > "$OUT/VERSIONS" <<V
kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl; staging modules v0.${K8S_VERSION#v1.})
etcd $(grep 'go.etcd.io/etcd/server/v3 ' "$HERE/go/go.mod" | awk '{print $2}')
training-operator $TRAINING_OPERATOR_VERSION
trainer $TRAINER_VERSION
jobset $JOBSET_VERSION
kueue $KUEUE_VERSION
$("$GO" version)
V
touch "$OUT/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$OUT"
