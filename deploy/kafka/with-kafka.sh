#!/usr/bin/env bash
# with-kafka.sh CMD [ARGS...]: runs CMD with KAFKA_BROKERS pointing at a real
# Apache Kafka broker. If KAFKA_BROKERS is already set, CMD runs against it.
# Otherwise the local broker of kafka.sh is started (or reused), and stopped
# afterwards if this script started it. CMD's exit code is returned.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -n "${KAFKA_BROKERS:-}" ]]; then
  exec "$@"
fi
started=0
if ! bash "$here/kafka.sh" status >/dev/null 2>&1; then
  started=1
fi
line=$(bash "$here/kafka.sh" up)
export "${line?}"
stop() {
  if [[ $started == 1 ]]; then
    bash "$here/kafka.sh" down --wipe >&2 || true
  fi
}
trap stop EXIT
echo "with-kafka: KAFKA_BROKERS=$KAFKA_BROKERS" >&2
set +e
"$@"
rc=$?
set -e
exit $rc
