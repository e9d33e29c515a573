# kafka-http-wrapper — build, test and run.
#
#   make run     start the whole local system and show a record going through
#   make stop    stop everything make run started
#   make test    the lint, then every test CI runs (with -race, browser tests and the short chaos run included); installs what it needs
#   make lint    go vet, gofmt (fails on any unformatted file) and staticcheck (pinned version, fails on any finding)
#   make soak    the chaos run for DURATION (default 30m) per variant (MODE: both, zookeeper, kafka), with its summary
#   make browser-test  headless Chromium screenshot of kmonitor's dashboard
#   make bench   load benchmarks, figures as ratios against baselines of the same run
#   make fuzz    run every fuzz target for FUZZTIME each
#   make vulncheck  govulncheck on the code (needs https://vuln.go.dev)
#   make install  binaries, example configuration, systemd units, logrotate (PREFIX, SYSCONFDIR, DESTDIR)
#   make proto   regenerate the Go code of kproxy/pubsub/pubsub.proto (protoc, pinned protoc-gen-go)

GO        ?= go
BIN       := bin
FUZZTIME  ?= 30s
DURATION  ?= 30m
# The chaos run's variants make soak runs: both (one after the other, each for
# DURATION), zookeeper or kafka (the module's offsets in that store).
MODE      ?= both
TESTFLAGS ?=

.PHONY: all build install deps lint test soak browser-test bench fuzz vulncheck proto run stop clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./kproxy ./ktransfer ./kmonitor ./scripts/devbroker ./scripts/demobackend

deps:
	@scripts/install-deps.sh

# Lint: go vet; gofmt, failing on any file it would change; staticcheck with
# the checks of staticcheck.conf (all of them), failing on any finding. go run
# builds staticcheck at the pinned version from the Go module proxy on first
# use (then from the module cache), so a fresh machine needs only Go. The pin,
# staticcheck's newest release, builds with the Go of go.mod; raise it with Go.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFMT       := $(shell $(GO) env GOROOT)/bin/gofmt

lint:
	$(GO) vet ./...
	@out=$$($(GOFMT) -l . 2>&1) || { echo "$$out" >&2; exit 1; }; \
	if [ -n "$$out" ]; then echo "gofmt: not formatted (gofmt -w FILE):" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

# The chaos run goes last and on its own, with -v so its summaries are printed:
# one round of faults with each offset store (TestChaos/zookeeper, TestChaos/kafka).
test: deps lint
	BROWSER_TEST=1 $(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) $$($(GO) list ./... | grep -v /scripts/chaos)
	$(GO) test -race -count=1 -timeout 10m -v $(TESTFLAGS) -run TestChaos ./scripts/chaos/

# The long chaos run: faults in rounds for DURATION, then the same proof and
# summary, for each variant MODE names.
soak: deps
	@case "$(MODE)" in both|zookeeper|kafka) ;; \
	*) echo "make soak: MODE=$(MODE): must be both, zookeeper or kafka" >&2; exit 2 ;; esac
	$(GO) test -race -count=1 -timeout 0 -v -run 'TestChaos/$(if $(filter both,$(MODE)),,^$(MODE)$$)' ./scripts/chaos/ -args -duration=$(DURATION)

# Only the browser tests (also part of make test); SCREENSHOT=file.png keeps the
# screenshot of the running kmonitor's dashboard.
browser-test: deps
	BROWSER_TEST=1 DASHBOARD_SCREENSHOT=$(SCREENSHOT) $(GO) test -race -count=1 -run 'Browser|Dashboard' -v ./kmonitor/web/ ./kmonitor/

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./kproxy/proxy/ ./kproxy/httpapi/ ./ktransfer/push/ ./ktransfer/window/ ./ktransfer/dispatch/
	$(GO) test -run '^$$' -bench BenchmarkLoad -benchtime 1x -timeout 30m -v ./kproxy/
	$(GO) test -run '^$$' -bench BenchmarkGateways -benchtime 1x -timeout 30m -v ./kproxy/
	$(GO) test -run '^$$' -bench BenchmarkFetch -benchtime 1x -timeout 30m -v ./kproxy/pubsub/
	$(GO) test -run '^$$' -bench BenchmarkTransfer -benchtime 1x -timeout 30m -v ./ktransfer/
	$(GO) test -run '^$$' -bench . -benchmem ./kmonitor/monitor/
	$(GO) test -run '^$$' -bench 'BenchmarkScale|BenchmarkIdleGroups|BenchmarkKafkaGroups' -benchtime 1x -timeout 30m -v ./kmonitor/

# Each target runs alone: go test -fuzz takes one package and one target at a time.
FUZZ_TARGETS := \
	./pkg/envelope:FuzzValidate \
	./pkg/envelope:FuzzMethod \
	./pkg/config:FuzzDecode \
	./pkg/config:FuzzEnvOverride \
	./pkg/zkconsumers:FuzzDecodeOffset \
	./pkg/zkconsumers:FuzzParsePartition \
	./pkg/kafkaconn:FuzzParseRegistration \
	./pkg/kafkaconn:FuzzRegistrationRoundTrip \
	./pkg/partition:FuzzPartitioners \
	./pkg/commitmeta:FuzzDecode \
	./pkg/http1:FuzzParseRequest \
	./pkg/http1:FuzzBodyReader \
	./pkg/http1:FuzzReadResponse \
	./kproxy/httpapi:FuzzCommitQuery \
	./kproxy/httpapi:FuzzBatch \
	./kproxy/httpapi:FuzzRecordHeaders \
	./kproxy/proxy:FuzzValidTopic \
	./kproxy/proxy:FuzzParseAcks \
	./kproxy/proxy:FuzzAuthorization \
	./kproxy/proxy:FuzzReadValue \
	./ktransfer/push:FuzzQueryEscape \
	./ktransfer/push:FuzzResponse \
	./ktransfer/push:FuzzRequest \
	./ktransfer/push:FuzzExpandURI \
	./ktransfer/push:FuzzParseServer \
	./ktransfer/push:FuzzParseRetryAfter \
	./ktransfer/transfer:FuzzParseStatusRanges \
	./ktransfer/transfer:FuzzLoadModule \
	./kmonitor/monitor:FuzzDelayQuery \
	./kmonitor/zkwatch:FuzzSubscription \
	./kmonitor/monitor:FuzzJSONString \
	./kmonitor/web:FuzzMinutes \
	./kproxy/pubsub:FuzzFrame \
	./kproxy/devicehive:FuzzFrame

# A failure that wrote no new input to testdata/fuzz is the fuzzing engine's own
# (its coordinator can time out on a loaded machine): that target runs once more.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		for try in 1 2; do \
			echo "== $$pkg $$name"; \
			before=$$(ls $$pkg/testdata/fuzz/$$name 2>/dev/null | wc -l); \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg && break; \
			after=$$(ls $$pkg/testdata/fuzz/$$name 2>/dev/null | wc -l); \
			if [ $$after -gt $$before ] || [ $$try = 2 ]; then exit 1; fi; \
			echo "== no failing input was written: running $$name once more"; \
		done; \
	done

# Known vulnerabilities in the code and its modules. govulncheck comes from the Go
# module proxy (v1.1.4: later versions need modules the proxy does not serve); its
# database is read from https://vuln.go.dev, so this needs that host (CI does not run it).
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.1.4

vulncheck:
	$(GO) run $(GOVULNCHECK) ./...

# protoc is Debian's protobuf-compiler; protoc-gen-go runs at the version go.mod
# requires (kproxy/pubsub/protoc-gen-go.sh), so the generated code matches its runtime.
proto: deps
	$(GO) generate ./kproxy/pubsub/

run: deps build
	@scripts/run-local.sh start

stop:
	@scripts/run-local.sh stop

clean:
	rm -rf $(BIN)

# Install as a service. PREFIX (/usr/local) holds the binaries and the systemd
# units (PREFIX/lib/systemd/system, which systemd reads); SYSCONFDIR (/etc) the
# configuration, the logrotate file and nothing else. DESTDIR stages the whole tree
# (packaging). An existing configuration file is never overwritten; the installed
# ktransfer.yaml leaves ops_listen unset, so each ktransfer@ process of a host finds
# a free operations port when 5040 is taken. Without
# DESTDIR, the system user comes from systemd-sysusers when it is present.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
BINDIR     := $(PREFIX)/bin
UNITDIR    := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
CONFDIR    := $(SYSCONFDIR)/kafka-http-wrapper
LOGDIR     := /var/log/kafka-http-wrapper

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(CONFDIR)/modules $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 $(BIN)/kproxy $(BIN)/ktransfer $(BIN)/kmonitor $(DESTDIR)$(BINDIR)/
	for f in conf/systemd/*.service.in; do \
		u=$$(basename $$f .in); \
		sed -e 's#@BINDIR@#$(BINDIR)#g' -e 's#@CONFDIR@#$(CONFDIR)#g' $$f > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -m 0644 conf/systemd/kafka-http-wrapper.sysusers $(DESTDIR)$(SYSUSERSDIR)/kafka-http-wrapper.conf
	install -m 0644 conf/logrotate/kafka-http-wrapper $(DESTDIR)$(SYSCONFDIR)/logrotate.d/kafka-http-wrapper
	for d in kproxy ktransfer kmonitor; do \
		dst=$(DESTDIR)$(CONFDIR)/$$d.yaml; \
		[ -e $$dst ] || sed -e 's#^\( *log_dir:\).*#\1 $(LOGDIR)#' \
			-e 's#^module_conf_dir:.*#module_conf_dir: $(CONFDIR)/modules#' \
			-e 's#^ops_listen:#\# (unset: several ktransfer@ processes share this file) ops_listen:#' \
			conf/$$d.yaml > $$dst; \
	done
	[ -e $(DESTDIR)$(CONFDIR)/modules/example.yaml ] || install -m 0644 conf/modules/example.yaml $(DESTDIR)$(CONFDIR)/modules/
	chmod 0644 $(DESTDIR)$(CONFDIR)/*.yaml
	if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(SYSUSERSDIR)/kafka-http-wrapper.conf; \
	fi
