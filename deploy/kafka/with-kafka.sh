#!/usr/bin/env bash
# with-kafka.sh CMD [ARGS...]: runs CMD with KAFKA_BROKERS pointing at a real
# Apache Kafka broker, and returns its exit code. With KAFKA_BROKERS set, CMD
# runs against it. Otherwise it is cmd/internal/kafkaenv/withkafka (what
# `make test` and `make bench` use): a broker of its own (a container where
# a Docker engine answers, else kafka.sh's broker on free ports with a data
# directory of its own), stopped afterwards, also when this is interrupted
# or sent SIGTERM (the signal is passed on to CMD first).
set -euo pipefail
if [[ -n "${KAFKA_BROKERS:-}" ]]; then
  exec "$@"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# one binary per checkout, built next to it and renamed into place: runs of
# two checkouts, or two runs of one, never exec each other's or a half-written one
dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/invroute
key=$(printf %s "$root" | cksum | cut -d' ' -f1)
bin=$dir/withkafka-$key
mkdir -p "$dir"
(cd "$root" && go build -o "$bin.$$" ./cmd/internal/kafkaenv/withkafka)
mv -f "$bin.$$" "$bin"
exec "$bin" "$@" # this process becomes withkafka: signals sent to it reach it
