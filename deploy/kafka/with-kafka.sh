#!/usr/bin/env bash
# with-kafka.sh CMD [ARGS...]: runs CMD with KAFKA_BROKERS pointing at a real
# Apache Kafka broker, and returns its exit code. It is
# cmd/internal/kafkaenv/withkafka (what `make test` and `make bench` use):
# the caller's KAFKA_BROKERS if set, else a broker of its own (a container
# where a Docker engine answers, else kafka.sh's broker on free ports with a
# data directory of its own), stopped afterwards, also when this is
# interrupted or sent SIGTERM (the signal is passed on to CMD first).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${XDG_CACHE_HOME:-$HOME/.cache}/invroute/withkafka
mkdir -p "$(dirname "$bin")"
(cd "$root" && go build -o "$bin" ./cmd/internal/kafkaenv/withkafka)
exec "$bin" "$@" # this process becomes withkafka: signals sent to it reach it
