# kafka-http-wrapper — build, test and run.
#
#   make run     start the whole local system and show a record going through
#   make stop    stop everything make run started
#   make test    every test CI runs (with -race, browser tests and the short chaos run included); installs what it needs
#   make soak    the chaos run for DURATION (default 30m), with its summary
#   make browser-test  headless Chromium screenshot of kmonitor's dashboard
#   make bench   load benchmarks, figures as ratios against baselines of the same run
#   make fuzz    run every fuzz target for FUZZTIME each

GO        ?= go
BIN       := bin
FUZZTIME  ?= 30s
DURATION  ?= 30m
TESTFLAGS ?=

.PHONY: all build deps test soak browser-test bench fuzz run stop clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./kproxy ./ktransfer ./kmonitor ./scripts/devbroker ./scripts/demobackend

deps:
	@scripts/install-deps.sh

# The chaos run goes last and on its own, with -v so its summary is printed.
test: deps
	$(GO) vet ./...
	BROWSER_TEST=1 $(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) $$($(GO) list ./... | grep -v /scripts/chaos)
	$(GO) test -race -count=1 -timeout 10m -v $(TESTFLAGS) -run TestChaos ./scripts/chaos/

# The long chaos run: faults in rounds for DURATION, then the same proof and summary.
soak: deps
	$(GO) test -race -count=1 -timeout 0 -v -run TestChaos ./scripts/chaos/ -args -duration=$(DURATION)

# Only the browser tests (also part of make test); SCREENSHOT=file.png keeps the
# screenshot of the running kmonitor's dashboard.
browser-test: deps
	BROWSER_TEST=1 DASHBOARD_SCREENSHOT=$(SCREENSHOT) $(GO) test -race -count=1 -run 'Browser|Dashboard' -v ./kmonitor/web/ ./kmonitor/

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./kproxy/proxy/ ./ktransfer/push/ ./ktransfer/window/ ./ktransfer/dispatch/
	$(GO) test -run '^$$' -bench BenchmarkLoad -benchtime 1x -timeout 30m -v ./kproxy/
	$(GO) test -run '^$$' -bench BenchmarkTransfer -benchtime 1x -timeout 30m -v ./ktransfer/
	$(GO) test -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 30m -v ./kmonitor/

# Each target runs alone: go test -fuzz takes one package and one target at a time.
FUZZ_TARGETS := \
	./pkg/envelope:FuzzValidate \
	./pkg/envelope:FuzzMethod \
	./pkg/config:FuzzDecode \
	./kproxy/proxy:FuzzCommitQuery \
	./kproxy/proxy:FuzzValidTopic \
	./ktransfer/push:FuzzReadHead \
	./ktransfer/push:FuzzQueryEscape \
	./kmonitor/web:FuzzMinutes

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$pkg $$name"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

run: deps build
	@scripts/run-local.sh start

stop:
	@scripts/run-local.sh stop

clean:
	rm -rf $(BIN)
