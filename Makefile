# invroute: the two set-up commands of the README are `make demo` and `make test`.
GO        ?= go
PKGS      := ./...
TEST_TIMEOUT ?= 45m

.PHONY: demo test check unit fuzz bench chaos build kafka-up kafka-down fmt

## demo: run the engine on its embedded broker for 20 s (see `invroute demo -h`)
demo:
	$(GO) run ./cmd/invroute demo --duration 20s

## build: the invroute binary in ./bin
build:
	CGO_ENABLED=0 $(GO) build -o bin/invroute ./cmd/invroute

## check: formatting and vet
check:
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo "make check: no Go files from git ls-files (run it in a git checkout)"; exit 1; }; \
	out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## test: the whole suite with -race; integration tests on a real Kafka broker:
## KAFKA_BROKERS if set, else a testcontainers-go container where a Docker
## engine answers, else the local broker of deploy/kafka (Maven Central jars)
## (withkafka is built, not `go run`: go run dies of SIGTERM without
## passing it on, and would leave withkafka, and its broker, running)
test: check fuzz
	$(GO) build -o bin/withkafka ./cmd/internal/kafkaenv/withkafka
	INVROUTE_REQUIRE_KAFKA=1 bin/withkafka \
		$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

## fuzz: every fuzz target (decoders, each processor's input path) for FUZZTIME
## each, beyond its committed seeds (go test alone runs the seeds only).
## Go 1.26's fuzz coordinator can end a run that found nothing with a bare
## "context deadline exceeded" when -fuzztime expires (golang/go#75804, fixed
## in Go 1.27): such a run, with no failing input written, is run once more;
## anything else fails at once, with its output.
FUZZTIME ?= 3s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; \
	    out=$$(mktemp); \
	    for try in 1 2; do \
	      if $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1; then break; fi; \
	      if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$out && \
	         ! grep -q 'Failing input written' $$out; then \
	        echo "  the fuzz coordinator's deadline race (golang/go#75804), nothing found: once more"; continue; \
	      fi; \
	      cat $$out; rm -f $$out; exit 1; \
	    done; \
	    rm -f $$out; \
	  done; \
	done

## unit: fast tests only (kfake in-process, no real broker)
unit:
	$(GO) test -short -count=1 $(PKGS)

## bench: figures on the real broker and on kfake (see README, Performance)
bench: build
	$(GO) build -o bin/withkafka ./cmd/internal/kafkaenv/withkafka
	bin/withkafka bin/invroute bench

## chaos: the long fault suite (issue 4): 3 engine processes under mixed load,
## 10 SIGKILLs, clean and rolling restarts, a broker restart, a paused
## instance, scale 1 -> 3 -> 1; it starts its own broker on ports 29092/29093.
## The short variant (TestChaos without INVROUTE_CHAOS) runs in `make test`.
chaos:
	INVROUTE_CHAOS=long $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 40m ./cmd/invroute

kafka-up:
	deploy/kafka/kafka.sh up
kafka-down:
	deploy/kafka/kafka.sh down
