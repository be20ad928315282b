# xdna-whisper — build, test, benchmark and fixture targets.
# Every target works from a clean clone; expensive tools are cached under
# $(XDNA_CACHE) (default /var/cache/xdna-whisper), keyed by version.

GO          ?= go
XDNA_CACHE  ?= /var/cache/xdna-whisper
export XDNA_CACHE
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X github.com/xdna-whisper/xdna-whisper/internal/version.Version=$(VERSION) \
               -X github.com/xdna-whisper/xdna-whisper/internal/version.Commit=$(COMMIT)
BINARIES    := whisper-encoder

.PHONY: all build test test-unit lint demo bench fixtures clean generate-proto check-proto

all: build

## build: the binaries into bin/ (static, version stamped)
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

## test: every test the project has (what .ci/run runs)
test: lint test-unit check-proto test-encoder

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test-unit: go test of the main module
test-unit:
	$(GO) test ./...

## generate-proto: regenerate api/encoder/v1 Go code (protoc + pinned protoc-gen-go/-grpc)
generate-proto:
	bash hack/proto.sh generate

## check-proto: fail if the committed generated proto code is stale
check-proto:
	bash hack/proto.sh check

## images: OCI image tarballs in bin/images without a container engine (hack/images):
## one per binary in BINARIES, plus the e2e node's pause and e2e-agent images
IMAGE_REPO  ?= ghcr.io/xdna-whisper
IMAGE_TAG   ?= $(VERSION)
CREATED     ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
.PHONY: images test-images e2e
images: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pause ./hack/images/pause
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/e2e-agent ./test/e2e/agent
	@rm -f bin/images/*.tar
	$(GO) run ./hack/images -out bin/images -repository $(IMAGE_REPO) -tag $(IMAGE_TAG) -version $(VERSION) \
	    -revision $(COMMIT) -created $(CREATED) $(foreach b,$(BINARIES) pause e2e-agent,$(b)=bin/$(b))

## test-images: the image builder's tests (test-unit runs them too)
test-images:
	$(GO) test ./hack/images/...

## e2e: a real single-node Kubernetes from nothing, as root (test/e2e/e2e.sh):
## node up, our images, scenarios (E2E_SCENARIOS, default smoke), full teardown
e2e: images
	test/e2e/install-deps.sh >/dev/null
	test/e2e/e2e.sh run $(E2E_SCENARIOS)

## test-encoder: the CPU encoder's tests again with the portable (purego) kernels
## forced at build time, and the backend's concurrency under the race detector
## (plain `go test ./...` already runs every ISA this machine supports)
.PHONY: test-encoder bench-encoder goldens
test-encoder:
	$(GO) test -count=1 -tags purego ./encoder/kernels ./encoder/backend ./encoder/model
	$(GO) test -race -count=1 ./encoder/backend

## bench-encoder: the Go CPU encoder against ONNX Runtime (onnxruntime-node) on the
## same whisper-base-sized fp32 ONNX and input, alternating A/B, at 1 and 2 threads
BENCH_ONNX ?= $(XDNA_CACHE)/fixtures/whisper-base-fp32.onnx
bench-encoder: build
	@test -f $(BENCH_ONNX) || /usr/bin/python3 testdata/gen/gen_fixtures.py bench $(BENCH_ONNX)
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	@dir=$$(bin/whisper-encoder stage --source $(BENCH_ONNX) --cache $(XDNA_CACHE)/staged 2>/dev/null) && \
	for t in 1 2; do \
	  echo "== $$t thread(s) =="; \
	  bin/whisper-encoder bench --weights $$dir --threads $$t --in testdata/mel/jfk_80.npy --ort $(BENCH_ONNX) --rounds 9 || exit 1; \
	done

## goldens: ONNX Runtime's outputs for the fixture models (testdata/golden)
goldens:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	node testdata/ort/golden.js

## demo: the main job on the bundled default
demo:

## bench: every benchmark, side by side with its reference
bench:

## fixtures: regenerate committed fixtures with real tools (PyTorch, onnx, ORT)
fixtures:

clean:
	rm -rf bin
