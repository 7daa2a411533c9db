# Targets as in goka's examples (start, stop, restart) plus run and test.
# The two commands that matter work without make: `go run main.go` and
# `go test -count=1 -timeout 30m ./...`. The program's own tests (end to end, crashes,
# benchmarks) are in internal/app, those of its start-up repair of damaged
# logs in internal/repair.

DOCKER ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
# The three brokers of docker-compose.yml.
KAFKA_BROKERS ?= 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094

.PHONY: all run run-kafka test test-race test-kafka soak bench bench-kafka start stop restart clean

all:
	@echo "targets: run run-kafka test test-race test-kafka soak bench bench-kafka start stop restart clean"

# The example with its embedded broker: no Docker, no Kafka needed.
run:
	go run main.go

# The example against the Kafka cluster from docker-compose.yml.
run-kafka:
	go run main.go -brokers $(KAFKA_BROKERS)

# The test command from the README (and .ci/run).
test:
	go test -count=1 -timeout 30m ./...

# The same with the race detector, which needs a C compiler.
test-race:
	go test -race -count=1 -timeout 30m ./...

# The tests that take a real cluster from KAFKA_BROKERS, against the one
# make start started: end to end, the crashes of the program and of the
# processor, the scale-out, brokers killed (the others start their own
# embedded broker).
KAFKA_TESTS = ^Test(EndToEndKafka|KafkaTopicsReplicated|KafkaBrokersKilled|KafkaClusterStopped|ClicksFromAnyClientCountedOnce|CrashesCountEachClickOnce|CrashesOfProcessorAlone|ScaleOut|TakeOverFromTheOriginal)$$
test-kafka:
	KAFKA_BROKERS=$(KAFKA_BROKERS) go test -count=1 -timeout 30m -run '$(KAFKA_TESTS)' -v ./internal/app

# The crash and scale-out tests with 100 SIGKILLs each instead of a few.
soak:
	CLICKS_CRASHES=100 go test -count=1 -timeout 120m -run 'Crashes|ScaleOut' -v ./internal/app

# The benchmarks (bench_test.go), each end to end once, with their figures
# as benchmark metrics; the output also goes to bench.txt, for benchstat.
# BENCH selects some: make bench BENCH=Latency (write a $ in it as $$, for
# make: make bench BENCH='Throughput/users=10$$/')
BENCH ?= .
bench:
	bash -o pipefail -c "go test -run '^$$' -bench '$(BENCH)' -benchtime 1x -count 1 -timeout 60m ./internal/app | tee bench.txt"

# The benchmarks that run on a real cluster, on the one make start
# started (each deletes clicks' topics and group there first), into
# bench-kafka.txt; BENCH_KAFKA selects as BENCH does.
BENCH_KAFKA ?= Throughput/users=10/|Latency|Export|ManyUsers
bench-kafka:
	bash -o pipefail -c "KAFKA_BROKERS=$(KAFKA_BROKERS) go test -run '^$$' -bench '$(BENCH_KAFKA)' -benchtime 1x -count 1 -timeout 60m ./internal/app | tee bench-kafka.txt"

# The three Kafka brokers of docker-compose.yml where a Docker engine
# answers; otherwise the same three as JVM processes (cluster/kafka.sh, with
# java and mvn; KAFKA_FLAVOUR=zookeeper for Kafka 3.9 with ZooKeeper).
# start returns once all three brokers list each other.
CLUSTER ?= cluster/kafka.sh
HAVE_DOCKER = $(DOCKER) info >/dev/null 2>&1
HAVE_JVM = command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1
NO_CLUSTER = echo "make: no way to start Kafka here: install Docker (docker-compose.yml) or a JDK 17+ and Maven (cluster/kafka.sh)" >&2; exit 1
start:
	@if $(HAVE_DOCKER); then set -x; $(DOCKER) compose up -d --wait; \
	elif $(HAVE_JVM); then set -x; $(CLUSTER) start; \
	else $(NO_CLUSTER); fi

stop:
	@if $(HAVE_DOCKER); then set -x; $(DOCKER) compose down; \
	else set -x; $(CLUSTER) stop; fi

restart: stop start

# Remove the local state: the embedded broker's log and the table caches.
clean:
	rm -rf data
