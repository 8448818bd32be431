# ToneVault. `make run` and `make test` work on a fresh Debian machine with
# Go: they install what they need (Debian packages, test tools) first.

GO      ?= go
BIN     := bin
TONEVAULT := $(BIN)/tonevault
SPANDSP_DTMF := $(BIN)/spandsp-dtmf
# Pinned; the version is in the path so that a bump rebuilds it.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
FUZZTIME ?= 20s

.PHONY: all build run cluster demo test e2e test-unit bench bench-rtpengine load cps lint fuzz fuzz-long deps tools clean

all: build

build: $(TONEVAULT)

# Always rebuilt: go build knows what changed.
$(TONEVAULT): FORCE
	$(GO) build -trimpath -o $@ ./cmd/tonevault

# The whole gateway on loopback with its embedded defaults: Vault dev
# server, acquirer simulator, a SIPp agent, a webhook receiver and
# tonevault serve; prints, as commands to paste, how to place a test call
# and take a payment. Ctrl-C stops everything.
run: build
	scripts/install-deps.sh sip
	scripts/run.sh $(TONEVAULT)

# The gateway as a cluster on loopback: PostgreSQL, three Vault servers
# (Raft), three nodes behind Kamailio, psp-sim, a SIPp agent and a
# webhook receiver; prints how to use it. State in .cluster/. Ctrl-C
# stops everything.
cluster: build
	scripts/install-deps.sh sip store cluster
	scripts/cluster.sh $(TONEVAULT)

# The DTMF engine on a generated call recording: scan, mask, scan again.
demo: build
	scripts/install-deps.sh dtmf
	scripts/demo.sh $(TONEVAULT)

# Every test, with the reference detectors required rather than skipped,
# after the lint.
test: deps tools lint
	TONEVAULT_REQUIRE_TOOLS=1 TONEVAULT_SPANDSP_DTMF=$(abspath $(SPANDSP_DTMF)) $(GO) test -count=1 -timeout 20m ./...

# The end-to-end payment tests alone (real Vault, psp-sim, SIP caller and
# agent, Chromium); make test runs them too.
e2e: deps tools
	TONEVAULT_REQUIRE_TOOLS=1 TONEVAULT_SPANDSP_DTMF=$(abspath $(SPANDSP_DTMF)) $(GO) test -count=1 -v ./test/e2e ./test/sipe2e

# Package tests only: no Debian packages needed (the store's PostgreSQL
# tests skip without it).
test-unit:
	$(GO) test ./dtmf/... ./audit/... ./capture/... ./psp/... ./sip/... ./media/... ./payment/... ./api/... ./store/... ./configs/... ./internal/... ./cmd/...

bench: build tools
	$(GO) test -run '^$$' -bench . -benchmem ./dtmf/... ./audit/... ./capture/... ./psp/... ./sip/... ./media/... ./api/... ./tokenize/... ./payment/... ./store/... ./internal/...

# The relay under load: N calls of G.711 both ways through the relay in a
# child process; LOAD_RELAY=bare or batched measures the yardsticks (a bare
# Go UDP relay, the batched-syscall floor). See BENCHMARKS.md.
LOAD_CALLS ?= 500
LOAD_DURATION ?= 10s
LOAD_RELAY ?= tonevault
load: build
	$(TONEVAULT) load --relay $(LOAD_RELAY) --calls $(LOAD_CALLS) --duration $(LOAD_DURATION)

# The relay beside Debian's rtpengine (userspace, driven over ng by
# tonevault load): BENCH_CALLS call counts, RUNS rounds of each of
# tonevault, goroutines, batched, rtpengine pass and mask. A benchmark,
# not part of make test; see BENCHMARKS.md.
BENCH_CALLS ?= 50 500 1000
bench-rtpengine: build
	scripts/install-deps.sh rtpengine
	scripts/bench-rtpengine.sh $(TONEVAULT) $(BENCH_CALLS)

# SIP call rate: a SIPp customer places CPS_CALLS calls at CPS_RATE per
# second through tonevault serve to a SIPp agent; see BENCHMARKS.md.
CPS_RATE ?= 300
CPS_CALLS ?= 18000
cps: build
	scripts/install-deps.sh sip
	scripts/sipp-rate.sh $(TONEVAULT) $(CPS_RATE) $(CPS_CALLS)

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Built from the Go module proxy on first use. go install name@version
# leaves the gateway's go.mod alone: a tool directive would add
# staticcheck's requirements (x/tools, x/mod...) to the graph that picks
# the versions the gateway is built with.
$(STATICCHECK):
	GOBIN=$(abspath $(dir $@)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Every Fuzz function in the module, FUZZTIME each (scripts/fuzz.sh finds
# them); fuzz-long is the 10-minute-per-target soak (not part of make test).
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

fuzz-long:
	GO=$(GO) scripts/fuzz.sh 10m

deps:
	scripts/install-deps.sh dtmf sip browser store memory cluster

# The reference SpanDSP detector, and Vault's server for the tokenization
# tests (built from the Go module proxy once, then cached outside the tree:
# see scripts/vault-server.sh).
tools: $(SPANDSP_DTMF)
	scripts/vault-server.sh build >/dev/null

$(SPANDSP_DTMF): test/tools/spandsp-dtmf/main.c
	@mkdir -p $(BIN)
	cc -O2 -Wall -o $@ $< $$(pkg-config --cflags --libs spandsp)

clean:
	rm -rf $(BIN)

FORCE:
