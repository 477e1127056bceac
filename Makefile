# RecPipeline: the one build and test interface.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
# Kubernetes binaries for envtest (etcd, kube-apiserver, kubectl), built from
# source by hack/build-kube-binaries.sh and cached across clones.
KUBE_BIN ?= $(BIN)/k8s

CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
KUSTOMIZE_VERSION ?= v5.8.1
KUSTOMIZE ?= $(BIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM_VERSION ?= v3.22.0
HELM ?= $(BIN)/helm-$(HELM_VERSION)
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO ?= $(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
PROTOC_GEN_GO_GRPC ?= $(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
# protoc's release, written into the header of runtime/internal/serving/stagepb/*.pb.go (bump
# it only together with make proto). hack/install-protoc.sh unpacks Debian's
# protobuf-compiler of this release into bin/ without installing it.
PROTOC_VERSION ?= 3.21.12
PROTOC ?= $(BIN)/protoc-$(PROTOC_VERSION)/protoc
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

GO_TEST_FLAGS ?= -race -count=1
# The packages whose tests count allocations or map memory outside the heap,
# which they skip under the race detector, run once more without it.
NORACE_PKGS = ./runtime/internal/serving/ann ./runtime/internal/serving/rank ./runtime/internal/serving/rerank
# The release: the tag make images and make push give the images, the
# chart's appVersion and the images dist/install.yaml names, all one value
# (version_test.go checks that they agree).
VERSION ?= $(shell sed -n 's/^appVersion: *//p' charts/recpipeline-operator/Chart.yaml)
# Registry path of the images; make push sends them to $(REGISTRY) instead.
IMAGE_REPO ?= ghcr.io/recpipeline
# Manager image of dist/install.yaml.
IMG ?= $(IMAGE_REPO)/manager:$(VERSION)
# recserve image the manager of dist/install.yaml gives pipelines that name none.
RUNTIME_IMG ?= $(IMAGE_REPO)/recserve:$(VERSION)
# recpipeline-tools image the manager of dist/install.yaml gives the training
# jobs of pipelines that name none.
TOOLS_IMG ?= $(IMAGE_REPO)/recpipeline-tools:$(VERSION)

.PHONY: all
all: build

##@ Development

.PHONY: demo
demo: ## Generate a small world, train its models, serve it with recserve --stage=all and print a recommendation.
	hack/demo.sh

.PHONY: demo-operator
demo-operator: kube-binaries ## Run the operator on a local API server with the sample pipeline and show what it makes.
	KUBEBUILDER_ASSETS=$(KUBE_BIN) go run ./hack/operator-demo

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and the manager's RBAC from the API markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true \
		paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(MAKE) --no-print-directory chart-crds

.PHONY: chart-crds
chart-crds: ## Copy the generated CRDs into the Helm chart.
	cp config/crd/bases/*.yaml charts/recpipeline-operator/files/crds/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the API's deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

# $(call stagepb,<out-dir>) writes stages.pb.go and stages_grpc.pb.go of
# runtime/internal/serving/stagepb/stages.proto into <out-dir>.
stagepb = cd runtime/internal/serving/stagepb && $(PROTOC) --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) \
	--go_out=$(1) --go_opt=paths=source_relative --go-grpc_out=$(1) --go-grpc_opt=paths=source_relative stages.proto

.PHONY: proto
proto: $(PROTOC) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Generate the stages' gRPC code from runtime/internal/serving/stagepb/stages.proto with the pinned protoc.
	$(call stagepb,.)

$(PROTOC):
	hack/install-protoc.sh $(dir $@) $(PROTOC_VERSION)

$(PROTOC_GEN_GO):
	GOBIN=$(BIN)/tmp-protoc-gen-go go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(BIN)/tmp-protoc-gen-go/protoc-gen-go $@ && rmdir $(BIN)/tmp-protoc-gen-go

$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(BIN)/tmp-protoc-gen-go-grpc go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(BIN)/tmp-protoc-gen-go-grpc/protoc-gen-go-grpc $@ && rmdir $(BIN)/tmp-protoc-gen-go-grpc

.PHONY: fmt
fmt: $(GOLANGCI_LINT) ## Format the code and group the imports as make lint wants them.
	$(GOLANGCI_LINT) fmt ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

##@ Test

.PHONY: test-deps
test-deps: kube-binaries redis-server $(HELM) ## Build or install what the tests need.

.PHONY: kube-binaries
kube-binaries: ## Build etcd, kube-apiserver and kubectl from source (cached).
	hack/build-kube-binaries.sh $(KUBE_BIN) etcd kube-apiserver kubectl

.PHONY: redis-server
redis-server: ## Install redis-server from Debian if it is missing.
	@command -v redis-server >/dev/null || { \
		echo "Installing redis-server"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

.PHONY: verify-generated
verify-generated: manifests generate verify-proto ## Fail when the committed CRD, RBAC, deepcopy or protobuf code is stale.
	@if [ -n "$$(git status --porcelain -- config/crd config/rbac/role.yaml api charts/recpipeline-operator/files/crds)" ]; then \
		git --no-pager diff --stat -- config/crd config/rbac/role.yaml api charts/recpipeline-operator/files/crds; \
		echo "Generated files are stale: commit the output of 'make manifests generate'."; exit 1; fi

.PHONY: verify-proto
verify-proto: $(PROTOC) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Fail when runtime/internal/serving/stagepb/*.pb.go differ from what make proto writes.
	rm -rf $(BIN)/_stagepb && mkdir -p $(BIN)/_stagepb
	$(call stagepb,$(BIN)/_stagepb)
	@for f in stages.pb.go stages_grpc.pb.go; do \
		diff -u runtime/internal/serving/stagepb/$$f $(BIN)/_stagepb/$$f || { \
		echo "runtime/internal/serving/stagepb/$$f is stale: commit the output of 'make proto'."; exit 1; }; done

.PHONY: test
test: test-deps vet lint verify-generated ## Run every unit, envtest and integration test.
	HELM=$(HELM) KUBEBUILDER_ASSETS=$(KUBE_BIN) go test $(GO_TEST_FLAGS) ./...
	go test -count=1 $(NORACE_PKGS)

.PHONY: cluster-up cluster-down cluster-status cluster-demo
cluster-up: ## Start a single-node Kubernetes cluster on this machine (root; builds cached); prints the exports to use it.
	hack/local-cluster.sh up
cluster-demo: $(HELM) ## The sample pipeline on the local cluster: cluster up, images imported, chart installed, demo data on a claim, pipeline Ready, a working curl printed.
	HELM=$(HELM) hack/cluster-demo.sh
cluster-down: ## Stop the local cluster and remove everything it and make cluster-demo or the e2e suite made (images, data); the build cache stays.
	hack/local-cluster.sh purge
cluster-status: ## Show the local cluster's components, node and pods.
	hack/local-cluster.sh status

.PHONY: test-e2e
test-e2e: $(HELM) ## Run the end-to-end suite on a local single-node cluster (hack/local-cluster.sh).
	HELM=$(HELM) hack/e2e.sh

.PHONY: bench
bench: test-deps ## Run the benchmarks (long; not part of make test).
	KUBEBUILDER_ASSETS=$(KUBE_BIN) RECPIPELINE_BENCH=1 go test -run '^$$' -bench . -benchmem -timeout 60m ./...

.PHONY: bench-serving
bench-serving: ## Serving figures on the 1,000,000-item world (hack/bench-serving.sh; world and models cached: about 25 min the first time, most of it training, then about 7 min a run).
	hack/bench-serving.sh

.PHONY: bench-rectrain
bench-rectrain: ## rectrain's time and peak memory at 10k, 100k and 1M items (hack/bench-rectrain.sh; worlds cached; about 20 min).
	hack/bench-rectrain.sh

.PHONY: bench-quality
bench-quality: ## Quality through the served HTTP path on an ID-only world: funnel vs the two-tower source alone, popularity and random.
	hack/bench-quality.sh

##@ Build

.PHONY: build
build: ## Build the manager and the runtime's commands (recserve, rectrain, recgen, recbench) into bin/.
	go build -o $(BIN)/manager .
	go build -o $(BIN)/ ./runtime/cmd/...

.PHONY: build-installer
build-installer: manifests $(KUSTOMIZE) ## Write dist/install.yaml (CRD, RBAC, manager) for kubectl apply -f; IMG, RUNTIME_IMG and TOOLS_IMG set the images.
	mkdir -p dist
	rm -rf $(BIN)/installer && mkdir -p $(BIN)/installer && cp -r config $(BIN)/installer/
	cd $(BIN)/installer/config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	sed -i 's|--default-runtime-image=.*|--default-runtime-image=$(RUNTIME_IMG)|' $(BIN)/installer/config/manager/manager.yaml
	sed -i 's|--default-tools-image=.*|--default-tools-image=$(TOOLS_IMG)|' $(BIN)/installer/config/manager/manager.yaml
	$(KUSTOMIZE) build $(BIN)/installer/config/default > dist/install.yaml
	@echo "Wrote dist/install.yaml (manager image $(IMG), default runtime image $(RUNTIME_IMG), default tools image $(TOOLS_IMG))"

##@ Images

# Registry and path that `make push` sends the images to, e.g. ghcr.io/recpipeline.
REGISTRY ?=
IMAGES_DIR ?= $(BIN)/images
PLATFORM ?= linux/amd64
# Extra flags of hack/images build, e.g. -tools for the recpipeline-tools image.
IMAGES_FLAGS ?=

.PHONY: images
images: ## Build the manager and recserve images into bin/images/*.tar without Docker.
	go run ./hack/images build -out $(IMAGES_DIR) -version $(VERSION) -platform $(PLATFORM) $(IMAGES_FLAGS)

.PHONY: push
push: images ## Push the images to $(REGISTRY)/{manager,recserve}:$(VERSION) with docker login's credentials.
	@test -n "$(REGISTRY)" || { echo "Set REGISTRY, e.g. make push REGISTRY=ghcr.io/me"; exit 1; }
	go run ./hack/images push -in $(IMAGES_DIR) -registry $(REGISTRY) -version $(VERSION)

.PHONY: images-import
images-import: images ## Import the images (and recpipeline-tools when built) into the local cluster's containerd (namespace k8s.io).
	for f in $(IMAGES_DIR)/*.tar; do \
		ctr --address $${CONTAINERD_ADDRESS:-/var/lib/recpipeline-cluster/containerd/containerd.sock} -n k8s.io images import "$$f"; done

.PHONY: version
version: ## Print the release: the images' tag and the chart's appVersion.
	@echo $(VERSION)

.PHONY: run
run: manifests ## Run the manager against the cluster of the current kubeconfig.
	go run . --leader-elect=false

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(HELM):
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/helm $@

$(KUSTOMIZE):
	GOBIN=$(BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(BIN)/kustomize $@

$(GOLANGCI_LINT):
	GOBIN=$(BIN)/tmp-golangci-lint go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/tmp-golangci-lint/golangci-lint $@ && rmdir $(BIN)/tmp-golangci-lint

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
