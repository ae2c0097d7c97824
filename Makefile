# faas — run `make help` for the targets.
GO       ?= go
BIN      := bin/faas
PKGS     := ./...
# go test's own default timeout is 10 minutes; the suite stays well under it.
TEST_TIMEOUT ?= 14m

.PHONY: help deps build run test test-short bench bench-e2e lint check samples clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install missing system packages (libzmq3-dev, pkg-config, redis-server, redis-sentinel, chromium)
	@scripts/deps.sh --with-redis --with-browser

build: ## build bin/faas
	@scripts/deps.sh
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/faas

run: build ## build and start everything in one process (embedded Redis, server, local pool) on :8000
	./$(BIN) dev --addr 127.0.0.1:8000 -w 2

test: deps ## run every test with the race detector (needs redis-server; installs it)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-short: ## quick tests without the race detector
	$(GO) test -short -count=1 $(PKGS)

bench: deps ## run the benchmarks (sandbox, store, dispatch modes, end to end)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./sandbox ./store ./dispatch
	$(GO) run ./bench -mode local -n 20000
	$(GO) run ./bench -mode rest -n 20000 -c 64
	$(GO) run ./bench -mode latency -n 3000
	$(GO) run ./bench -mode pull -n 20000 -slots 8
	$(GO) run ./bench -mode push -n 20000 -slots 8
	scripts/bench-asynq.sh 3 20000

lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

check: lint ## lint, and fail if go mod tidy would change go.mod/go.sum
	@cp go.mod /tmp/faas.go.mod.bak; cp go.sum /tmp/faas.go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/faas.go.mod.bak || ! cmp -s go.sum /tmp/faas.go.sum.bak; then \
	  echo "go mod tidy changes go.mod/go.sum: commit its result"; \
	  cp /tmp/faas.go.mod.bak go.mod; cp /tmp/faas.go.sum.bak go.sum; exit 1; fi

samples: ## rebuild the sample .wasm modules (installs wabt, clang, wasi-libc, assemblyscript)
	samples/build.sh

clean: ## remove build outputs
	rm -rf bin
