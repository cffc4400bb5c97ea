# Drover's build, test and deployment entry points. `make test` is all CI
# needs; `make run` is the local dev loop; `make images` and
# `make e2e-compose` are the docker compose deployment (docs/deploy.md).

GO        ?= go
BIN       := bin
BINARIES  := jobmanager jobmaster worker drover nats-server
# Static binaries: the images are FROM scratch.
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w'

# Images: one per service, tagged locally; nothing is pulled or pushed.
IMAGES    := jobmanager jobmaster worker nats
IMAGE_TAG ?= dev
IMAGE_REPO ?= drover
STAGE     := $(BIN)/.images

# Test budget: a 2-core CI machine must finish well under 10 minutes.
# -race only on the core packages, where it matters and stays cheap; the
# rest (services, jobs, the end-to-end test with real processes) without.
TEST_P           ?= 2
RACE_PKGS        ?= ./pkg/... ./internal/...
RACE_TIMEOUT     ?= 5m
REST_TIMEOUT     ?= 6m
TESTFLAGS        ?=
REST_PKGS         = $(shell $(GO) list ./... | grep -v -e '/pkg/' -e '/internal/')

BENCH_ARGS ?=

.PHONY: all build run test fmt-check vet test-race test-rest test-examples bench bench-quick \
	images e2e-compose clean

all: build

build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

run: build
	./$(BIN)/drover dev

test: fmt-check vet test-race test-rest test-examples

# Modules of their own (go.mod with a replace to this repository): built
# and tested as a job author outside this module would.
EXAMPLES         := examples/hello

fmt-check:
	@out="$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...) $(EXAMPLES) | sed 's|^$(CURDIR)/||')"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test-examples:
	@for m in $(EXAMPLES); do \
		echo "(cd $$m && $(GO) vet ./... && $(GO) test -timeout $(REST_TIMEOUT) $(TESTFLAGS) ./...)"; \
		(cd $$m && $(GO) vet ./... && $(GO) test -timeout $(REST_TIMEOUT) $(TESTFLAGS) ./...) || exit 1; \
	done

test-race:
	$(GO) test -race -p $(TEST_P) -timeout $(RACE_TIMEOUT) $(TESTFLAGS) $(RACE_PKGS)

test-rest:
	@if [ -z "$(strip $(REST_PKGS))" ]; then echo "test-rest: no packages"; else \
	echo "$(GO) test -p $(TEST_P) -timeout $(REST_TIMEOUT) $(TESTFLAGS) <$(words $(REST_PKGS)) packages outside pkg/ and internal/>"; \
	$(GO) test -p $(TEST_P) -timeout $(REST_TIMEOUT) $(TESTFLAGS) $(REST_PKGS); fi

# The benchmark program lives in ./bench; it writes its figures to a file.
bench: bench-check
	$(GO) run ./bench $(BENCH_ARGS)

bench-quick: bench-check
	$(GO) run ./bench -quick $(BENCH_ARGS)

.PHONY: bench-check
bench-check:
	@if ! ls bench/*.go >/dev/null 2>&1; then \
		echo "make bench: there is no benchmark program yet (./bench has no Go files)" >&2; exit 1; fi

# Each image is built from a staging directory holding only its Dockerfile,
# its binary and its config, so the build context is a few MB, not bin/.
images: build
	@for img in $(IMAGES); do \
		dir=$(STAGE)/$$img; rm -rf $$dir; mkdir -p $$dir; \
		cp deploy/docker/$$img.Dockerfile $$dir/Dockerfile; \
		case $$img in \
			nats) cp $(BIN)/nats-server deploy/docker/nats-server.conf $$dir/ && mkdir $$dir/data ;; \
			*) cp $(BIN)/$$img $$dir/ ;; \
		esac; \
		echo "docker build -t $(IMAGE_REPO)/$$img:$(IMAGE_TAG) $$dir"; \
		docker build -q -t $(IMAGE_REPO)/$$img:$(IMAGE_TAG) $$dir >$$dir.log 2>&1 \
			|| { cat $$dir.log; exit 1; }; \
	done

e2e-compose:
	./scripts/e2e-compose.sh

clean:
	rm -rf $(BIN)
