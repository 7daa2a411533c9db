# Targets as in goka's examples (start, stop, restart) plus run and test.
# The two commands that matter work without make: `go run main.go` and
# `go test -count=1 -timeout 30m ./...`. The program's own tests (end to end, crashes,
# benchmarks) are in internal/app.

DOCKER ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
# The three brokers of docker-compose.yml.
KAFKA_BROKERS ?= 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094

.PHONY: all run run-kafka test test-race test-kafka soak bench start stop restart clean

all:
	@echo "targets: run run-kafka test test-race test-kafka soak bench start stop restart clean"

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
# from docker-compose.yml: end to end, the crashes of the program and of the
# processor, and the scale-out (the others start their own embedded broker).
KAFKA_TESTS = ^Test(EndToEndKafka|KafkaTopicsReplicated|KafkaBrokerDown|CrashesCountEachClickOnce|CrashesOfProcessorAlone|ScaleOut)$$
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

# Start the three Kafka brokers and return once all pass their healthchecks.
start:
	$(DOCKER) compose up -d --wait

stop:
	$(DOCKER) compose down

restart: stop start

# Remove the local state: the embedded broker's log and the table caches.
clean:
	rm -rf data
