#!/usr/bin/env bash
# make cluster-demo: the sample pipeline on a local single-node cluster, the
# way a user runs it on any cluster, in one command:
#   1. the local cluster up (hack/local-cluster.sh; root, builds cached);
#   2. the images of this release built (manager, recserve,
#      recpipeline-tools; `make version` tells the tag) and imported into
#      the cluster's containerd;
#   3. the operator installed from the chart with its default values (the
#      images of the chart's appVersion: no tag is overridden);
#   4. the demo world and models put on the claim explore-data by the Job of
#      config/samples/demo-data.yaml (on a hostPath volume: the local
#      cluster has no provisioner);
#   5. config/samples/serving_v1alpha1_recpipeline.yaml applied (with -k,
#      as the GitOps examples of config/samples/gitops sync it) and Ready;
#   6. one recommendation asked through the frontend Service, and the curl
#      that does it printed.
# Everything it makes stays up for you to use; `make cluster-down` removes
# all of it (the cluster, its images and the demo data).
#
# Usage: hack/cluster-demo.sh [up|clean]
#   up     (default) as above; run again, it reuses what is there.
#   clean  removes the demo (pipeline, namespace, data, operator) but keeps
#          the cluster.
#
# Environment: HELM (helm binary; make passes its pinned one), NAMESPACE
# [recs], DEMO_DATA_DIR [/var/lib/recpipeline-demo], VERSION [make version].
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
helm=${HELM:-helm}
ns=${NAMESPACE:-recs}
data_dir=${DEMO_DATA_DIR:-/var/lib/recpipeline-demo}
version=${VERSION:-$(make --no-print-directory -s version)}
release=recpipeline
operator_ns=recpipeline-system
# The Job's user (config/samples/demo-data.yaml): a hostPath directory does
# not take the pod's fsGroup, so it is given to that user.
data_uid=65532

log() { echo "[cluster-demo $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the local cluster needs it"
command -v "$helm" >/dev/null || die "no helm at '$helm' (make cluster-demo builds the pinned one)"
for tool in curl jq go; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

exports=
cluster_env() {
  exports=$(hack/local-cluster.sh up | grep '^export ')
  eval "$exports"
}

clean() {
  cluster_env
  log "removing the demo from namespace $ns"
  kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=3m
  kubectl delete pv "recpipeline-demo-$ns" --ignore-not-found --wait=true --timeout=1m
  "$helm" uninstall "$release" -n "$operator_ns" --wait --ignore-not-found
  rm -rf "$data_dir"
}

up() {
  local start=$SECONDS
  log "local cluster"
  cluster_env

  log "images of release $version (manager, recserve, recpipeline-tools)"
  go run ./hack/images build -out bin/images -version "$version" -tools
  local image
  for image in manager recserve recpipeline-tools; do
    ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import "bin/images/$image.tar" >/dev/null
  done

  log "operator: helm upgrade --install $release charts/recpipeline-operator (default values)"
  "$helm" upgrade --install "$release" charts/recpipeline-operator -n "$operator_ns" --create-namespace \
    --wait --timeout 5m

  log "demo data: claim explore-data on $data_dir, filled by job/explore-data"
  mkdir -p "$data_dir"
  chown "$data_uid:$data_uid" "$data_dir"
  kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: recpipeline-demo-$ns
  labels: {app.kubernetes.io/part-of: recpipeline-sample}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $data_dir, type: Directory}
  claimRef: {namespace: $ns, name: explore-data}
EOF
  kubectl apply -n "$ns" -f config/samples/demo-data.yaml
  if ! kubectl wait -n "$ns" --for=condition=Complete job/explore-data --timeout=15m; then
    kubectl -n "$ns" describe job/explore-data >&2 || true
    kubectl -n "$ns" logs job/explore-data --all-containers --tail=30 >&2 || true
    die "job/explore-data did not complete"
  fi

  # -k config/samples: the sample as the GitOps examples
  # (config/samples/gitops) sync it.
  log "pipeline: kubectl apply -k config/samples (serving_v1alpha1_recpipeline.yaml)"
  kubectl apply -n "$ns" -k config/samples
  if ! kubectl wait -n "$ns" --for=condition=Ready rp/explore --timeout=10m; then
    kubectl -n "$ns" describe rp/explore >&2 || true
    die "rp/explore did not become Ready"
  fi
  kubectl -n "$ns" get rp explore -o wide

  local ip url body
  ip=$(kubectl -n "$ns" get svc explore-frontend -o jsonpath='{.spec.clusterIP}')
  url="http://$ip:8080/v1/recommendations?user=u7&n=10"
  body=$(curl -fsS --retry 5 --retry-all-errors --max-time 5 "$url") || die "GET $url failed"
  jq -e '.items | length == 10' >/dev/null <<<"$body" || die "GET $url: not 10 items: $body"
  log "ready in $((SECONDS - start)) s"
  cat <<EOF

The sample pipeline serves. From this machine (the frontend Service's
ClusterIP; it stays valid when the frontend pod is replaced):

  curl '$url'

Use the cluster:
$(sed 's/^/  /' <<<"$exports")
Watch it:          kubectl -n $ns get rp explore -o wide
Remove all of it:  make cluster-down
EOF
}

case ${1:-up} in
  up) up ;;
  clean) clean ;;
  *) echo "usage: $0 [up|clean]" >&2; exit 2 ;;
esac
