# xdna-whisper — build, test, benchmark and fixture targets.
# Every target works from a clean clone; expensive tools are cached under
# $(XDNA_CACHE) (default /var/cache/xdna-whisper), keyed by version.

GO          ?= go
XDNA_CACHE  ?= /var/cache/xdna-whisper
export XDNA_CACHE
# Evaluated once (:=): a commit landing mid-build must not change the stamp.
VERSION     := $(or $(VERSION),$(shell git describe --tags --always --dirty 2>/dev/null || echo dev))
COMMIT      := $(or $(COMMIT),$(shell git rev-parse HEAD 2>/dev/null || echo unknown))
LDFLAGS     := -s -w -X github.com/xdna-whisper/xdna-whisper/internal/version.Version=$(VERSION) \
               -X github.com/xdna-whisper/xdna-whisper/internal/version.Commit=$(COMMIT)
BINARIES    := whisper-encoder xdna-device-plugin xdna-dra-driver whisper-operator

.PHONY: all build test test-unit lint demo bench fixtures clean generate-proto check-proto check-asm

all: build

## build: the binaries into bin/ (static, version stamped; BINDIR=dir for another directory)
BINDIR      ?= bin
build:
	@mkdir -p $(BINDIR)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/ $(addprefix ./cmd/,$(BINARIES))

## bench-tool: whisper-encoder and the developer benchmark tool whisper-bench into
## bin/ (whisper-bench is in no image: it runs node/python3 scripts from testdata/)
.PHONY: bench-tool
bench-tool:
	@mkdir -p bin && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/whisper-encoder ./cmd/whisper-bench

## help: this list (every target documents itself with a "## target: what it does" comment)
.PHONY: help check dockerfile
help:
	@awk '/^## [^ :]+:/ { sub(/^## /, ""); n = index($$0, ":"); printf "  %-22s%s\n", substr($$0, 1, n - 1), substr($$0, n + 1); next } \
	      /^## / { sub(/^## /, ""); printf "  %-22s %s\n", "", $$0 }' $(firstword $(MAKEFILE_LIST))

## check: the inner loop — lint, unit, envtest, kubelet and chart tests; no e2e, no images,
## no fixtures regenerated (under 10 minutes warm on 2 cores; see README "Testing")
check: lint test-unit check-proto check-asm test-deviceplugin test-kubelet verify-generated test-operator test-chart

## test: every test the project has (what .ci/run runs)
test: lint test-unit check-proto check-asm test-server test-openai test-deviceplugin test-kubelet test-dra test-encoder verify-generated test-operator test-stage test-tokenizer test-transcribe test-chart verify-docs e2e

## lint: golangci-lint (.golangci.yml: go vet's checks, staticcheck, errcheck, unused, ...) on
## every module, and gofmt on every tracked .go file (also those no build loads)
# Every module of the repository (each go.mod), so that a new one is linted too.
GO_MODULES  := $(dir $(shell git ls-files go.mod '*/go.mod'))
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(GO_MODULES); do echo "golangci-lint $$m"; (cd $$m && $(CURDIR)/hack/golangci-lint.sh run ./...) || exit 1; done

## test-unit: go test of the main module
test-unit:
	$(GO) test ./...

## generate-proto: regenerate api/encoder/v1 Go code (protoc + pinned protoc-gen-go/-grpc)
generate-proto:
	bash hack/proto.sh generate

## check-proto: fail if the committed generated proto code is stale
check-proto:
	bash hack/proto.sh check

## check-asm: fail if encoder/kernels' committed assembly is not what its generator
## (encoder/kernels/internal/asmgen; go generate ./encoder/kernels) writes today
check-asm:
	bash hack/asm.sh check

## images: OCI image tarballs in bin/images without a container engine (hack/images):
## one per binary in BINARIES, plus the e2e node's pause and e2e-agent images
IMAGE_REPO  ?= ghcr.io/xdna-whisper
IMAGE_TAG   ?= $(VERSION)
CREATED     ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
.PHONY: images test-images e2e
images: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/pause ./hack/images/pause
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/e2e-agent ./test/e2e/agent
	@rm -f $(BINDIR)/images/*.tar
	$(GO) run ./hack/images -out $(BINDIR)/images -repository $(IMAGE_REPO) -tag $(IMAGE_TAG) -version $(VERSION) \
	    -revision $(COMMIT) -created $(CREATED) $(foreach b,$(BINARIES) pause e2e-agent,$(b)=$(BINDIR)/$(b))

## test-images: the image builder's tests (test-unit runs them too)
test-images:
	$(GO) test ./hack/images/...

## e2e: a real single-node Kubernetes from nothing, as root (test/e2e/e2e.sh): node up,
## our images, scenarios (E2E_SCENARIOS, default "smoke whisper transcribe dra autoscale"), full teardown, timings.
## Its binaries and images go to their own directory (E2E_BINDIR), so that other builds
## into bin/ cannot change them under a running test.
E2E_BINDIR  ?= bin/e2e
e2e:
	@start=$$(date +%s%3N) && \
	$(MAKE) --no-print-directory images BINDIR=$(E2E_BINDIR) VERSION=$(VERSION) COMMIT=$(COMMIT) && \
	E2E_BIN=$(abspath $(E2E_BINDIR)) E2E_IMAGES_BUILD_MS=$$(( $$(date +%s%3N) - start )) test/e2e/e2e.sh run $(E2E_SCENARIOS)

## test-deviceplugin: the device plugin's unit tests with the race detector
## (fake sysfs/devfs trees with real character devices: needs root, as CI runs; a plain
## `go test` as another user skips those tests, saying why; XDNA_ROOT_TESTS=required fails them)
.PHONY: test-deviceplugin test-kubelet
test-deviceplugin:
	XDNA_ROOT_TESTS=required $(GO) test -race -count=1 ./deviceplugin/... ./cmd/xdna-device-plugin/...

## test-openai: the transcription API with the official OpenAI SDKs as clients, against the
## real Transcriber on testdata/models/hf-micro (separate module test/openai: openai-go/v3,
## and the npm `openai` package that npm ci installs from test/openai/package-lock.json)
.PHONY: test-openai
test-openai:
	cd test/openai && npm ci --no-audit --no-fund && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

## test-dra: the DRA driver (deviceplugin/amdxdna, deviceplugin/dra, cmd/xdna-dra-driver) with the
## race detector, its binary against a real kube-apiserver and kube-scheduler 1.37 with default feature
## gates (hack/k8s-bins.sh); XDNA_DRA_TEST=required makes those two tests fail instead of skip
.PHONY: test-dra
test-dra:
	@assets=$$(hack/k8s-bins.sh kube-apiserver etcd kube-scheduler) && \
	KUBEBUILDER_ASSETS=$$assets XDNA_DRA_TEST=required $(GO) test -race -count=1 -timeout 15m \
	  ./deviceplugin/amdxdna/... ./deviceplugin/dra/... ./cmd/xdna-dra-driver/...

## test-kubelet: the device plugin against the kubelet's own device manager
## (separate module test/kubelet, so the main go.mod never imports k8s.io/kubernetes);
## -v prints the measured latencies (lines starting with FIGURE)
test-kubelet:
	cd test/kubelet && $(GO) vet ./... && XDNA_ROOT_TESTS=required $(GO) test -race -count=1 -v -timeout 20m ./...

## test-encoder: the CPU encoder's and BF16 conversion's tests again with the portable (purego) kernels
## forced at build time, and the backend and concurrent Encode calls under the
## race detector (plain `go test ./...` already runs every ISA this machine supports)
.PHONY: test-encoder bench-encoder goldens
test-encoder:
	$(GO) test -count=1 -tags purego ./encoder/bf16 ./encoder/kernels ./encoder/backend ./encoder/model
	$(GO) test -race -count=1 ./encoder/backend
	$(GO) test -race -count=1 -run Concurrent ./encoder/model

## bench-encoder: the Go CPU encoder against ONNX Runtime (onnxruntime-node) on the
## same whisper-base-sized fp32 ONNX and input, alternating rounds, at 1 and 2 threads:
## a table per thread count, one row per kernel family (BENCH_KERNELS, default every one this CPU runs)
BENCH_ONNX ?= $(XDNA_CACHE)/fixtures/whisper-base-fp32.onnx
BENCH_KERNELS ?= all
bench-encoder: bench-tool
	@test -f $(BENCH_ONNX) || /usr/bin/python3 testdata/gen/gen_fixtures.py bench $(BENCH_ONNX)
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	@dir=$$(bin/whisper-encoder stage --source $(BENCH_ONNX) --cache $(XDNA_CACHE)/staged 2>/dev/null) && \
	for t in 1 2; do \
	  echo "== $$t thread(s) =="; \
	  bin/whisper-bench encoder --weights $$dir --threads $$t --in testdata/mel/jfk_80.npy --ort $(BENCH_ONNX) --rounds 9 --compare $(BENCH_KERNELS) || exit 1; \
	done

## goldens: ONNX Runtime's outputs for the fixture models (testdata/golden)
goldens:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	node testdata/ort/golden.js

## generate: deepcopy code of the WhisperEncoder API (controller-gen, pinned as a go tool)
## manifests: everything generated from the kubebuilder markers in api/ and operator/, in order:
## the CRD bases (config/crd/bases) and the operator's ClusterRole (config/rbac/role.yaml) by
## controller-gen (controller-gen-manifests), then the chart's copies of config/ (chart-sync)
## and the README's configuration reference (docs). After an API change: make generate manifests.
## verify-generated: fail when generate or controller-gen-manifests would change the committed
## files (verify-chart-sync and verify-docs check the chart's copies and the README)
.PHONY: generate manifests controller-gen-manifests verify-generated test-operator bench-operator
CONTROLLER_GEN := $(GO) tool controller-gen
generate:
	$(CONTROLLER_GEN) object paths=./api/v1alpha1/...
manifests: controller-gen-manifests
	@$(MAKE) --no-print-directory chart-sync docs
controller-gen-manifests:
	$(CONTROLLER_GEN) crd paths=./api/v1alpha1/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=whisper-operator paths=./operator/... output:rbac:artifacts:config=config/rbac
verify-generated: generate controller-gen-manifests dockerfile
	@out=$$(git status --porcelain -- api/v1alpha1 config/crd config/rbac Dockerfile); if [ -n "$$out" ]; then \
	  echo "generated files differ from the committed ones (run make generate manifests dockerfile and commit):"; echo "$$out"; \
	  git --no-pager diff --stat -- api/v1alpha1 config/crd config/rbac Dockerfile; exit 1; fi

## dockerfile: write the Dockerfile (container-engine builds of the product images) from
## hack/images' component list, the one description of the images
dockerfile:
	$(GO) run ./hack/images dockerfile > Dockerfile.tmp && mv Dockerfile.tmp Dockerfile

## test-operator: the WhisperEncoder operator and CRD against a real kube-apiserver and etcd
## built from source by hack/k8s-bins.sh (cached under $(XDNA_CACHE)), with the race detector
test-operator:
	@assets=$$(hack/k8s-bins.sh kube-apiserver etcd) && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test -race -count=1 -timeout 15m ./api/v1alpha1/... ./operator/... ./cmd/whisper-operator/... ./encoder/podreport/...

## bench-operator: 200 WhisperEncoders (20 sources) reconciled to steady state on envtest;
## prints time to steady state, API requests per object and steady-state writes (must be 0)
SCALE_OBJECTS ?= 200
SCALE_SOURCES ?= 20
bench-operator:
	@assets=$$(hack/k8s-bins.sh kube-apiserver etcd) && \
	KUBEBUILDER_ASSETS=$$assets WHISPER_SCALE_OBJECTS=$(SCALE_OBJECTS) WHISPER_SCALE_SOURCES=$(SCALE_SOURCES) \
	  $(GO) test -count=1 -timeout 20m -run '^TestScale$$' -v ./operator/ | grep -E '^(SCALE|---|ok|FAIL|PASS)'

## chart-sync: copy what the Helm chart installs from config/ (the generated CRD, the
## operator's generated ClusterRole, the leader-election and stager RBAC) into
## charts/xdna-whisper/files (make manifests runs it). verify-chart-sync fails when
## the chart's copies differ from config/.
## test-chart: helm lint --strict, helm template with the defaults and charts/xdna-whisper/ci/*.yaml,
## a strict server-side dry-run of every rendered object on envtest, the security properties,
## the exact RBAC rules, and the whisper-operator binary running with only the chart's RBAC
## (test/chart; helm from hack/helm.sh, third-party CRDs from hack/chart-test-crds.sh)
.PHONY: chart-sync verify-chart-sync test-chart docs verify-docs
CHART      := charts/xdna-whisper
CHART_RBAC := role.yaml leader_election_role.yaml stager.yaml
chart-sync:
	rm -f $(CHART)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp $(addprefix config/rbac/,$(CHART_RBAC)) $(CHART)/files/rbac/
verify-chart-sync:
	@ok=1; diff -r config/crd/bases $(CHART)/files/crds >/dev/null || ok=0; \
	for f in $(CHART_RBAC); do cmp -s config/rbac/$$f $(CHART)/files/rbac/$$f || ok=0; done; \
	if [ $$ok = 0 ]; then echo "charts/xdna-whisper/files differ from config/ (run make manifests, or make chart-sync, and commit):"; \
	  diff -r config/crd/bases $(CHART)/files/crds | head -20; \
	  for f in $(CHART_RBAC); do diff config/rbac/$$f $(CHART)/files/rbac/$$f | head -10; done; exit 1; fi
test-chart: verify-chart-sync
	@helm=$$(hack/helm.sh) && assets=$$(hack/k8s-bins.sh kube-apiserver etcd) && crds=$$(hack/chart-test-crds.sh) && \
	HELM=$$helm KUBEBUILDER_ASSETS=$$assets CHART_TEST_CRDS=$$crds XDNA_CHART_TEST=required \
	  $(GO) test -race -count=1 -timeout 20m ./test/chart/...

## docs: regenerate the README's configuration reference (chart values and WhisperEncoder
## spec) from charts/xdna-whisper/values.yaml, values.schema.json and the CRD (hack/docs);
## verify-docs fails when the committed README differs from what docs would write
docs:
	$(GO) run ./hack/docs -readme README.md
verify-docs:
	$(GO) run ./hack/docs -readme README.md -check

## test-server: the front end, server and client tests with the race detector, and a
## bounded fuzz run of the WAV/FLAC decoding entry point
.PHONY: test-server bench-server fixtures-frontend
test-server:
	$(GO) test -race -count=1 ./encoder/audio/... ./encoder/mel/... ./encoder/server/... ./encoder/client/...
	GO=$(GO) hack/fuzz.sh ./encoder/audio FuzzDecode $(FUZZTIME)

## fuzz: every reader of untrusted bytes fuzzed for FUZZ_EACH (default 20s) each: WAV/FLAC
## decoding and the server's Probe+Load path, .npy, ONNX and safetensors (for CI)
.PHONY: fuzz
FUZZ_EACH ?= 20s
fuzz:
	GO=$(GO) hack/fuzz.sh ./encoder/audio FuzzDecode $(FUZZ_EACH) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/audio FuzzLoad $(FUZZ_EACH) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/npy FuzzRead $(FUZZ_EACH) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/onnx FuzzParse $(FUZZ_EACH) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/safetensors FuzzParse $(FUZZ_EACH) -fuzzminimizetime 10x

## bench-server: serve + loadtest at concurrency 1/4/16/64 over loopback, with the
## in-process encoder at the same threads and batch as the saturation reference
bench-server: build
	@test -f $(BENCH_ONNX) || /usr/bin/python3 testdata/gen/gen_fixtures.py bench $(BENCH_ONNX)
	@dir=$$(bin/whisper-encoder stage --source $(BENCH_ONNX) --cache $(XDNA_CACHE)/staged 2>/dev/null) && \
	  hack/bench-server.sh $$dir 2 1 30s

## bench-transcribe-server: serve the whisper-base-shaped whole model (hf-fixture-base) in a pod-like
## memory limit (BENCH_MEMORY_LIMIT bytes, default 300 MB; 0: the container's, if any), 16 concurrent OpenAI transcriptions
## over HTTP (60 s of jfk each, 224 forced tokens a window), the server's peak RSS
.PHONY: bench-transcribe-server
BENCH_MEMORY_LIMIT ?= 300000000
bench-transcribe-server: bench-tool hf-fixture-base
	@dir=$$(bin/whisper-encoder stage --source $(XDNA_CACHE)/fixtures/hf-base --cache $(XDNA_CACHE)/staged 2>/dev/null) && \
	  hack/bench-transcribe-server.sh $$dir 16 60 224 -- --memory-limit $(BENCH_MEMORY_LIMIT)

## fixtures-frontend: audio fixtures (sox, espeak-ng) and torch.stft log-mel references
fixtures-frontend:
	bash testdata/gen/audio_fixtures.sh
	/usr/bin/python3 testdata/gen/mel_reference.py

## demo: the main job on the bundled default
demo: build
	bin/whisper-encoder demo

## bench: every benchmark, side by side with its reference
bench: bench-stage bench-server

## fixtures: regenerate committed fixtures with real tools (PyTorch, onnx, ORT)
fixtures: fixtures-stage fixtures-frontend

## test-stage: staging (ONNX -> BF16): race tests of the concurrent parts, a bounded
## fuzz run of the ONNX and safetensors readers and of the graph mapping, and onnxruntime-node running the
## quantized fixtures against their dequantized twins (testdata/ort/check_quantized.js)
.PHONY: test-stage fuzz-stage test-ort-fixtures bench-stage bench-model fixtures-stage
FUZZTIME ?= 10s
test-stage: fuzz-stage test-ort-fixtures
	$(GO) test -race -count=1 ./encoder/convert/... ./encoder/download ./encoder/onnx ./encoder/staged
# (-fuzzminimizetime bounds the minimization of new inputs: of a 40-80 kB model it
# would otherwise take the whole run)
fuzz-stage:
	GO=$(GO) hack/fuzz.sh ./encoder/onnx FuzzParse $(FUZZTIME) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/safetensors FuzzParse $(FUZZTIME) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/convert FuzzPlan $(FUZZTIME) -fuzzminimizetime 10x
test-ort-fixtures:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	node testdata/ort/check_quantized.js verify

## test-tokenizer: Whisper's tokenizer against the live references (js-tiktoken and
## @huggingface/tokenizers in testdata/tokenizer, npm ci) and the committed goldens,
## then a bounded fuzz run of encode/decode/stream decode and of the HF file readers.
## tokenizer-golden: regenerate testdata/tokenizer/golden.json and hf/*/*.gz from node
.PHONY: test-tokenizer fuzz-tokenizer tokenizer-golden tokenizer-node
tokenizer-node:
	@test -d testdata/tokenizer/node_modules/js-tiktoken || (cd testdata/tokenizer && npm ci --no-audit --no-fund)
test-tokenizer: tokenizer-node fuzz-tokenizer
	$(GO) test -race -count=1 -v ./encoder/tokenizer
fuzz-tokenizer:
	GO=$(GO) hack/fuzz.sh ./encoder/tokenizer FuzzEncodeDecode $(FUZZTIME) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/tokenizer FuzzParseHFTokenizerJSON $(FUZZTIME) -fuzzminimizetime 10x
	GO=$(GO) hack/fuzz.sh ./encoder/tokenizer FuzzParseHFVocabMerges $(FUZZTIME) -fuzzminimizetime 10x
tokenizer-golden: tokenizer-node
	node testdata/tokenizer/golden.mjs record

## test-transcribe: encoder/transcribe under the race detector, then its greedy ids required equal to
## the @huggingface/transformers ASR pipeline's (committed references in testdata/transcribe/golden)
## on hf-micro, on tiny-shaped real-vocabulary models (multilingual, English-only) generated
## into $(TRANSCRIBE_FIXTURES) and on hf-fixture-base; hf-tiny's long-form loop (305 s, no
## timestamps) window by window against the pipeline's 30 s chunks (testdata/transcribe/longref.mjs),
## and with timestamps against a PyTorch reference of Whisper's seek loop (seekref.py).
## transcribe-golden: rerun the pipeline (testdata/transcribe, npm ci) and rewrite the references
.PHONY: test-transcribe transcribe-golden transcribe-fixtures
TRANSCRIBE_FIXTURES ?= testdata/bench
transcribe-fixtures: hf-fixture-base
	@test -f $(TRANSCRIBE_FIXTURES)/hf-tiny/onnx/encoder_model.onnx || /usr/bin/python3 testdata/gen/gen_whisper_hf.py tiny $(TRANSCRIBE_FIXTURES)/hf-tiny
	@test -f $(TRANSCRIBE_FIXTURES)/hf-tiny-en/onnx/encoder_model.onnx || /usr/bin/python3 testdata/gen/gen_whisper_hf.py tiny.en $(TRANSCRIBE_FIXTURES)/hf-tiny-en
test-transcribe: transcribe-fixtures
	$(GO) test -race -count=1 -skip 'TestReference(Tokens|LongForm|Seek)' ./encoder/transcribe
	XDNA_TRANSCRIBE_TEST=required XDNA_TRANSCRIBE_FIXTURES=$(abspath $(TRANSCRIBE_FIXTURES)) $(GO) test -count=1 -v -run 'TestReference(Tokens|LongForm|Seek)' ./encoder/transcribe
# hf-micro's decoder exports are committed; regenerating them (the generator also rewrites the
# committed hf-micro decoder goldens with float-level noise, so those are checked out again)
transcribe-golden: transcribe-fixtures
	@test -d testdata/transcribe/node_modules/@huggingface/transformers || (cd testdata/transcribe && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	@test -f testdata/models/hf-micro/onnx/decoder_model_merged.onnx || (/usr/bin/python3 testdata/gen/gen_whisper_hf.py micro && git checkout -- testdata/golden/hf-micro)
	node testdata/transcribe/reference.mjs --model testdata/models/hf-micro --out testdata/transcribe/golden/hf-micro.json
	for m in hf-tiny hf-tiny-en; do node testdata/transcribe/reference.mjs --model $(TRANSCRIBE_FIXTURES)/$$m --out testdata/transcribe/golden/$$m.json || exit 1; done
	node testdata/transcribe/reference.mjs --model $(XDNA_CACHE)/fixtures/hf-base --out testdata/transcribe/golden/hf-base.json
	node testdata/transcribe/longref.mjs --model $(TRANSCRIBE_FIXTURES)/hf-tiny --out testdata/transcribe/golden/longform-hf-tiny.json
	/usr/bin/python3 testdata/transcribe/seekref.py tiny $(TRANSCRIBE_FIXTURES)/hf-tiny testdata/transcribe/golden/seek-hf-tiny.json 305

## bench-model: the whisper-base-sized fp32 export (~82 MB, random weights) that
## bench-stage and bench-encoder use: $(BENCH_ONNX)
bench-model: $(BENCH_ONNX)
$(BENCH_ONNX):
	/usr/bin/python3 testdata/gen/gen_fixtures.py bench $@

## bench-stage: staging wall time and peak RSS of the base-sized export, side by side
## with the seed pipeline (onnx.load + numpy + torch.bfloat16), then a large-v3-sized
## external-data model (payload synthesized for the committed real graph) against sha256sum
bench-stage: bench-tool $(BENCH_ONNX)
	bin/whisper-bench stage --encoder bin/whisper-encoder --model $(BENCH_ONNX) --large testdata/models/graphs/whisper-large-v3.onnx.gz

## fixtures-stage: testdata/models and the bundled demo model from PyTorch and onnx
## (Debian python3-torch, python3-onnx), the graph-only exports of every Whisper size,
## and the onnxruntime-node outputs of the quantized fixtures' dequantized twins
fixtures-stage:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	@tmp=$$(mktemp -d) && /usr/bin/python3 testdata/gen/gen_fixtures.py fixtures $$tmp && \
	  node testdata/ort/check_quantized.js record $$tmp && rm -rf $$tmp
	/usr/bin/python3 testdata/gen/gen_fixtures.py graphs

clean:
	rm -rf bin

## fixtures-decoder: the committed whole-model fixture testdata/models/hf-micro (Hugging Face
## layout, byte-level vocabulary, seeded BF16-rounded weights; its onnx/ exports are committed
## too, regenerated byte-identical) and its decoder check in testdata/golden/hf-micro: PyTorch's and
## onnxruntime-node's logits step by step (testdata/gen/gen_whisper_hf.py, testdata/ort/decoder_golden.js)
## hf-fixture-SIZE (tiny, base): the same for a real-vocabulary model of that shape, generated on
## demand into $(XDNA_CACHE)/fixtures/hf-SIZE (check/ holds its goldens)
.PHONY: fixtures-decoder test-decoder bench-decoder
fixtures-decoder:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	/usr/bin/python3 testdata/gen/gen_whisper_hf.py micro
	node testdata/ort/decoder_golden.js --onnx testdata/models/hf-micro/onnx --check testdata/golden/hf-micro
## test-decoder: the decoder's, backend's and kernels' tests (goldens, MatVecF32), concurrency with -race, and the
## live comparison with onnxruntime-node on every decoder fixture present (TestLiveORT)
test-decoder:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	$(GO) test -count=1 ./encoder/decoder/... ./encoder/backend/... ./encoder/kernels/...
	$(GO) test -race -count=1 -run 'Concurrent|BatchingIsExact/avx2' ./encoder/decoder/...
## bench-decoder: decode steps of the whisper-base-shaped fixture (real vocabulary, random BF16-rounded
## weights) at batch 1, 8 and 32: the Go decoder and onnxruntime-node's decoder_with_past on the same
## weights, same threads (BENCH_THREADS, default 2), alternating A/B in one run; BENCH_WEIGHTS=int8 runs
## the Go decoder on int8 weights (quantised at load; ORT keeps the fixture's fp32)
BENCH_THREADS ?= 2
BENCH_WEIGHTS ?= bf16
bench-decoder: bench-tool hf-fixture-base
	bin/whisper-bench decoder --model $(XDNA_CACHE)/fixtures/hf-base --threads $(BENCH_THREADS) --batches 1,8,32 --weights $(BENCH_WEIGHTS)
# keyed on tokenizer.json: a cache from before the generator wrote it (and onnx/encoder_model.onnx) is remade
.PRECIOUS: $(XDNA_CACHE)/fixtures/hf-%/tokenizer.json
hf-fixture-%: $(XDNA_CACHE)/fixtures/hf-%/tokenizer.json ;
$(XDNA_CACHE)/fixtures/hf-%/tokenizer.json:
	@test -d testdata/ort/node_modules/onnxruntime-node || (cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund)
	@mkdir -p $(XDNA_CACHE)/fixtures
	@rm -rf $(XDNA_CACHE)/fixtures/hf-$*.tmp
	/usr/bin/python3 testdata/gen/gen_whisper_hf.py $* $(XDNA_CACHE)/fixtures/hf-$*.tmp
	node testdata/ort/decoder_golden.js --onnx $(XDNA_CACHE)/fixtures/hf-$*.tmp/onnx --check $(XDNA_CACHE)/fixtures/hf-$*.tmp/check
	@rm -rf $(XDNA_CACHE)/fixtures/hf-$* && mv $(XDNA_CACHE)/fixtures/hf-$*.tmp $(XDNA_CACHE)/fixtures/hf-$*
