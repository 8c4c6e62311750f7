# Pyrite: the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
DATA_DIR  ?= .pyrite
NODE_DIR  := interop/node
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCH_COUNT ?= 5

# PostgreSQL-backed tests read this; unset, they skip.
export PYRITE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: run test bench lint node-deps build fuzz chromium kcat crash

## run: the whole pipeline in one process on embedded defaults (data in .pyrite/)
run:
	$(GO) run ./cmd/pyrite dev --data-dir $(DATA_DIR)

## build: every program into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: vet plus every test, interop with real Node clients, kcat and the board in headless Chromium included
test: node-deps chromium kcat
	$(GO) vet ./...
	$(GO) test -timeout 12m ./...

## crash: the full crash matrix (200k events over 2k aggregates; 10 SIGKILLs of pyrite dev, then
## ingest, upcaster and projector as separate processes 5 SIGKILLs each and 1 -> 3 -> 1 instances;
## two clean restarts); `make test` runs a bounded form of both. CRASH_RUNS repeats it.
CRASH_EVENTS ?= 200000
CRASH_AGGREGATES ?= 2000
CRASH_KILLS ?= 10
CRASH_RUNS ?= 1
crash:
	PYRITE_CRASH_EVENTS=$(CRASH_EVENTS) PYRITE_CRASH_AGGREGATES=$(CRASH_AGGREGATES) PYRITE_CRASH_KILLS=$(CRASH_KILLS) \
	  $(GO) test -count $(CRASH_RUNS) -failfast -timeout 0 -run '^TestCrashMatrix' -v ./internal/crashtest

## bench: every benchmark, each beside its baseline in the same run: the main module's, then
## bench/watermill's (Pyrite's runner and producer beside Watermill's, its own module so that
## Watermill stays out of the main module's dependencies). BENCH picks benchmarks by name.
## -p 1: the go command does one thing at a time (builds, vet, runs), so that none of its
## other work shares the two cores with a benchmark.
BENCH ?= .
bench:
	$(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCH_COUNT) -timeout 0 ./...
	cd bench/watermill && $(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCH_COUNT) -timeout 0 ./...

## lint: go vet and staticcheck
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: a short run of every fuzz target (FUZZTIME each)
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

node-deps: $(NODE_DIR)/node_modules/.package-lock.json

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund

# debian-tool: the recipe that installs Debian's package $(1) (its command has the same name)
# when it is missing, as root, or else stops naming the one command to run; $(2) says what needs it.
define debian-tool
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(1); \
	  else \
	    echo "make test needs $(1) for $(2); run: sudo apt-get update && sudo apt-get install -y $(1)" >&2; exit 1; \
	  fi; }
endef

# chromium: Debian's chromium for the board's browser test; nothing when it is there.
chromium:
	$(call debian-tool,chromium,the board's browser test)

# kcat: Debian's kcat (librdkafka 2.0.2) for the interop test against `pyrite dev --secure`; nothing when it is there.
kcat:
	$(call debian-tool,kcat,the secure interop test)
