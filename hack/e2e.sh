#!/usr/bin/env bash
# make test-e2e: the end-to-end suite (hack/e2e) on a real single-node
# cluster started by hack/local-cluster.sh, with the images built here and
# imported into the cluster's containerd. The cluster is left running for
# the next run; `hack/local-cluster.sh down` removes it (E2E_DOWN=1 does it
# at the end).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
helm=${HELM:?HELM must name the helm binary}
start=$SECONDS

eval "$(hack/local-cluster.sh up | grep '^export ')"
kubectl=$(command -v kubectl)

echo "==> Building and importing the images"
# recpipeline-tools runs the training Jobs of the batch step.
go run ./hack/images build -out bin/images -version e2e -tools
make --no-print-directory build-installer IMG=ghcr.io/recpipeline/manager:e2e RUNTIME_IMG=ghcr.io/recpipeline/recserve:e2e TOOLS_IMG=ghcr.io/recpipeline/recpipeline-tools:e2e
for image in manager recserve recpipeline-tools; do
  ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import "bin/images/$image.tar" >/dev/null
done
# A second tag of the same image, for the rolling update of the image.
ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images rm ghcr.io/recpipeline/recserve:e2e2 >/dev/null 2>&1 || true
ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images tag ghcr.io/recpipeline/recserve:e2e ghcr.io/recpipeline/recserve:e2e2 >/dev/null

echo "==> Running the suite"
status=0
KUBECTL=$kubectl HELM=$helm E2E_IMAGE_TAG=e2e E2E_IMAGE_TAG2=e2e2 \
  go test -tags e2e -count=1 -timeout 40m -v ./hack/e2e/ || status=$?

# The README's path, as a user takes it: make cluster-demo installs the
# chart with its default values and the images of this release, fills the
# sample's claim with the demo Job and asks the sample pipeline for a
# recommendation; it fails unless 10 items come back. The demo is removed
# after (the cluster stays).
if [ "$status" = 0 ]; then
  echo "==> make cluster-demo"
  demo_start=$SECONDS
  HELM=$helm hack/cluster-demo.sh up || status=$?
  echo "cluster-demo: $((SECONDS - demo_start))s, exit $status"
  HELM=$helm hack/cluster-demo.sh clean || status=$?
fi
echo "e2e suite: $((SECONDS - start))s in all, exit $status"
if [ "${E2E_DOWN:-0}" = 1 ]; then hack/local-cluster.sh down; fi
exit $status
