# The manager image that docker-build, docker-buildx, build-installer and
# deploy use: IMAGE_REPO tagged with VERSION unless IMG is given.
IMAGE_REPO ?= ghcr.io/mobile-next/apikey-operator
IMG ?= $(IMAGE_REPO):$(VERSION)
# YEAR defines the year value used for substituting the YEAR placeholder in the boilerplate header.
YEAR ?= 2026

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
# Be aware that the target commands are only tested with Docker which is
# scaffolded by default. However, you might want to replace it to use other
# tools. (i.e. podman)
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate WebhookConfiguration, ClusterRole and CustomResourceDefinition objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	@hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

# The control plane used by the tests (kube-apiserver, etcd, kube-controller-manager
# and kubectl) is built from the Go module proxy by hack/controlplane.sh and cached
# outside the repository, keyed by version.
.PHONY: envtest
envtest: ## Build (once) and print the directory with kube-apiserver, etcd, kube-controller-manager and kubectl.
	@hack/controlplane.sh

# test/packaging and test/rbac check what build-installer wrote (INSTALL_YAML,
# with the image INSTALL_IMG) and the chart, rendered by the helm that
# hack/helm.sh builds from its Go module. test/alerts checks the alerts and the
# dashboard with the promtool (PROMTOOL) that hack/promtool.sh builds.
.PHONY: test
test: manifests generate fmt vet build-installer ## Run unit and integration tests (on a real kube-apiserver and etcd).
	@assets="$$(hack/controlplane.sh)" && helm="$$(hack/helm.sh)" && promtool="$$(hack/promtool.sh)" && \
	echo "KUBEBUILDER_ASSETS=$$assets" && \
	KUBEBUILDER_ASSETS="$$assets" HELM="$$helm" PROMTOOL="$$promtool" INSTALL_YAML="$(CURDIR)/dist/install.yaml" INSTALL_IMG="$(IMG)" \
	go test ./... -count=1 -timeout 25m $(GOTESTFLAGS)

.PHONY: test-rules
test-rules: ## Check the alerts of config/prometheus/alerts.yaml with promtool and run their unit tests.
	@promtool="$$(hack/promtool.sh)" && \
	"$$promtool" check rules config/prometheus/alerts.yaml && \
	"$$promtool" test rules config/prometheus/alerts_test.yaml

.PHONY: test-e2e
test-e2e: build build-emulator ## Run the process-level tests: manager and emulator as real processes, killed with kill -9.
	@assets="$$(hack/controlplane.sh)" && \
	KUBEBUILDER_ASSETS="$$assets" MANAGER_BIN="$(LOCALBIN)/manager" EMULATOR_BIN="$(LOCALBIN)/mobilenext-emulator" \
	go test -tags=e2e ./test/e2e/ -count=1 -v -timeout 20m $(GOTESTFLAGS)

# The deterministic simulation (test/sim) also runs in `make test`, with the CI
# budget of seeds. `make sim SEEDS=100000` is the long run; `make sim SEED=<n>`
# replays one seed and prints its whole trace.
SEEDS ?=
SEED ?=
# SIMFLAGS passes more flags, e.g. the shrunk run a failing seed prints:
#   make sim SEED=<n> SIMFLAGS='-sim.only=crash,timeout -sim.spare=2,5'
SIMFLAGS ?=
.PHONY: sim
sim: ## Run the deterministic simulation of the key protocol: SEEDS=<n> seeds, or replay SEED=<n>.
	go test ./test/sim/ -run '^TestSimulation$$' -count=1 -v -timeout 0 -args $(if $(SEED),-sim.seed=$(SEED)) $(if $(SEEDS),-sim.seeds=$(SEEDS)) $(SIMFLAGS)

# The benchmark runs bin/manager as a real process on a real control plane
# (its memory is read from /proc, so Linux only) and prints one table: times
# to Ready and to deleted beside the floor, remote calls, writes at rest and
# on restart, memory. About 12 minutes on 2 cores. BENCHFLAGS runs a part:
#   make bench BENCHFLAGS='-bench.sizes=5000 -bench.memory=false'
BENCHFLAGS ?=
.PHONY: bench
bench: build ## Measure the operator at scale against the floor and print one table of figures and targets.
	@assets="$$(hack/controlplane.sh)" && \
	KUBEBUILDER_ASSETS="$$assets" MANAGER_BIN="$(LOCALBIN)/manager" \
	go test -tags=bench ./test/bench/ -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m -v -args $(BENCHFLAGS)

.PHONY: demo
demo: build build-emulator ## Start a local control plane and the emulator, run the operator and walk through an ApiKey's life.
	@hack/demo.sh

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	"$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	"$(GOLANGCI_LINT)" config verify

##@ Build

# VERSION is reported in the User-Agent of every API call and in the manager's log.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS = -X github.com/mobile-next/apikey-operator/internal/mobilenext.Version=$(VERSION)

.PHONY: build
build: manifests generate fmt vet ## Build the manager (bin/manager) and the kubectl plugin (bin/kubectl-mobilenext).
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd
	go build -ldflags "$(LDFLAGS)" -o bin/kubectl-mobilenext ./cmd/kubectl-mobilenext

.PHONY: build-emulator
build-emulator: ## Build the Mobile Next API emulator (bin/mobilenext-emulator).
	go build -o bin/mobilenext-emulator ./cmd/emulator

# RUN_ARGS passes flags to the manager, e.g. two replicas from one machine:
#   make run RUN_ARGS="--leader-elect --leader-election-namespace=default --health-probe-bind-address=:8081"
#   make run RUN_ARGS="--leader-elect --leader-election-namespace=default --health-probe-bind-address=:8082"
RUN_ARGS ?=
.PHONY: run
run: manifests generate fmt vet ## Run a controller from your host against the cluster in ~/.kube/config (flags in RUN_ARGS).
	go run ./cmd $(RUN_ARGS)

# If you wish to build the manager image targeting other platforms you can use the --platform flag.
# (i.e. docker build --platform linux/arm64). However, you must enable docker buildKit for it.
# More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# Override BASE_IMAGE to build from another registry, e.g.
# make docker-build IMG=<img> BASE_IMAGE=docker.io/library/golang:1.26
.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --build-arg VERSION=$(VERSION) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

# PLATFORMS defines the target platforms for the manager image be built to provide support to multiple
# architectures. (i.e. make docker-buildx IMG=myregistry/mypoperator:0.0.1). To use this option you need to:
# - be able to use docker buildx. More info: https://docs.docker.com/build/buildx/
# - have enabled BuildKit. More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# - be able to push the image to your registry (i.e. if you do not set a valid value via IMG=<myregistry/image:<tag>> then the export will fail)
# To adequately provide solutions that are compatible with multiple platforms, you should consider using this option.
PLATFORMS ?= linux/arm64,linux/amd64,linux/s390x,linux/ppc64le
.PHONY: docker-buildx
docker-buildx: ## Build and push docker image for the manager for cross-platform support
	# copy existing Dockerfile and insert --platform=${BUILDPLATFORM} into Dockerfile.cross, and preserve the original Dockerfile
	sed -e '1 s/\(^FROM\)/FROM --platform=\$$\{BUILDPLATFORM\}/; t' -e ' 1,// s//FROM --platform=\$$\{BUILDPLATFORM\}/' Dockerfile > Dockerfile.cross
	- $(CONTAINER_TOOL) buildx create --name apikey-operator-builder
	# A failed build fails the target (a release must not go on without its
	# image); the builder and Dockerfile.cross are removed either way.
	status=0; \
	$(CONTAINER_TOOL) buildx use apikey-operator-builder && \
	$(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--build-arg VERSION=$(VERSION) --tag ${IMG} -f Dockerfile.cross . || status=$$?; \
	$(CONTAINER_TOOL) buildx rm apikey-operator-builder || true; rm -f Dockerfile.cross; exit $$status

# dist/install.yaml is not committed: releases attach it (see
# .github/workflows/release.yml). The image is set in a throw-away overlay, so
# nothing tracked is rewritten.
.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml (CRDs, namespace, RBAC, Deployment, metrics Service) for the image IMG.
	@mkdir -p dist
	@tmp="$$(mktemp dist/.install.yaml.XXXXXX)" && \
	KUSTOMIZE="$(KUSTOMIZE)" hack/install-manifest.sh "$(IMG)" > "$$tmp" && mv "$$tmp" dist/install.yaml && \
	echo "dist/install.yaml: image $(IMG)"

.PHONY: helm
helm: ## Build (once) and print the path of the helm binary (hack/helm.sh).
	@hack/helm.sh

.PHONY: helm-lint
helm-lint: ## Lint the Helm chart in dist/chart.
	@"$$(hack/helm.sh)" lint --strict dist/chart

.PHONY: promtool
promtool: ## Build (once) and print the path of the promtool binary (hack/promtool.sh).
	@hack/promtool.sh

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" apply -f -; else echo "No CRDs to install; skipping."; fi

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -; else echo "No CRDs to delete; skipping."; fi

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	KUSTOMIZE="$(KUSTOMIZE)" hack/install-manifest.sh "$(IMG)" | "$(KUBECTL)" apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.22.0

GOLANGCI_LINT_VERSION ?= v2.13.1
.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))
	@test -f .custom-gcl.yml && { \
		echo "Building custom golangci-lint with plugins..." && \
		$(GOLANGCI_LINT) custom --destination $(LOCALBIN) --name golangci-lint-custom && \
		mv -f $(LOCALBIN)/golangci-lint-custom $(GOLANGCI_LINT); \
	} || true

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef
