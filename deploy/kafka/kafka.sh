#!/usr/bin/env bash
# kafka.sh - a real single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) on loopback, for integration tests and benchmarks.
#
#   kafka.sh up              start (or reuse) the broker; prints KAFKA_BROKERS=host:port
#   kafka.sh down [--wipe]   stop it (TERM, then KILL after 30 s); --wipe deletes the data dir
#   kafka.sh status          exit 0 + KAFKA_BROKERS=... if running, exit 3 if not
#   kafka.sh logs [N]        tail the broker log (default 100 lines)
#   kafka.sh env             print the resolved settings
#
# KAFKA_SECURITY=sasl_ssl (opt-in; default plaintext) starts a SASL_SSL client
# listener on KAFKA_PORT and an mTLS (SSL) listener on KAFKA_SSL_PORT instead
# of PLAINTEXT, with PEM files from KAFKA_SECURITY_DIR; KAFKA_AUTHORIZER=1
# turns on the StandardAuthorizer. See README.md.
#
# Only the KAFKA_BROKERS=... line goes to stdout, so `eval "$(kafka.sh up)"` or
# `export "$(kafka.sh up)"` works; all diagnostics go to stderr.
#
# No Docker and no apache.org download: the broker's jars come from Maven
# Central via `mvn dependency:copy-dependencies` on pom.xml next to this
# script, once, into a cache dir. See README.md for the environment variables.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HOST="127.0.0.1"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_WIPE="${KAFKA_WIPE:-0}"
# Opt-in security mode (README.md, "Security mode"); plaintext by default.
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
KAFKA_SECURITY_DIR="${KAFKA_SECURITY_DIR:-}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-}" # default KAFKA_PORT + 2
KAFKA_SASL_MECHANISMS="${KAFKA_SASL_MECHANISMS:-PLAIN,SCRAM-SHA-512}"
KAFKA_AUTHORIZER="${KAFKA_AUTHORIZER:-0}"
KAFKA_SUPER_USERS="${KAFKA_SUPER_USERS:-User:admin}"
_home="${HOME:-/tmp}"
CACHE_DIR="${INVROUTE_KAFKA_HOME:-$_home/.cache/invroute/kafka-$KAFKA_VERSION}"
# per user: another user's data (and its lock file next to it) is not ours to use
DATA_DIR="${INVROUTE_KAFKA_DATA:-/tmp/invroute-kafka-$UID}"
# strip trailing slashes (but keep "/" recognisable for the wipe guard)
while [[ "$DATA_DIR" == */ && "$DATA_DIR" != / ]]; do DATA_DIR="${DATA_DIR%/}"; done

LIB_DIR="$CACHE_DIR/lib"
CACHE_MARKER="$CACHE_DIR/.complete"
PROPS="$DATA_DIR/server.properties"
LOG_DIR="$DATA_DIR/logs"
BROKER_LOG="$LOG_DIR/server.log"
STDOUT_LOG="$DATA_DIR/kafka.out"
PID_FILE="$DATA_DIR/kafka.pid"
KAFKA_LOG_DIRS="$DATA_DIR/kafka-data"
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
PORTS_FILE="$DATA_DIR/ports"
LOCK_FILE="${DATA_DIR}.lock"
LOG4J_CONF="${KAFKA_LOG4J_CONF:-$SCRIPT_DIR/log4j2.xml}"
BROKERS="$KAFKA_HOST:$KAFKA_PORT"
READY_MARKER="Kafka Server started"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

check_port_var() {
  local name="$1" val="$2"
  if ! [[ "$val" =~ ^[0-9]+$ ]] || ((val < 1 || val > 65535)); then
    die "$name='$val' is not a valid port"
  fi
}
check_port_var KAFKA_PORT "$KAFKA_PORT"
check_port_var KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
[[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
[[ "$KAFKA_START_TIMEOUT" =~ ^[0-9]+$ ]] || die "KAFKA_START_TIMEOUT must be a number of seconds"
[[ "$KAFKA_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "KAFKA_STOP_TIMEOUT must be a number of seconds"
case "$KAFKA_SECURITY" in
  plaintext | PLAINTEXT) KAFKA_SECURITY=plaintext ;;
  sasl_ssl | SASL_SSL)
    KAFKA_SECURITY=sasl_ssl
    [[ -n "$KAFKA_SSL_PORT" ]] || KAFKA_SSL_PORT=$((KAFKA_PORT + 2))
    check_port_var KAFKA_SSL_PORT "$KAFKA_SSL_PORT"
    [[ "$KAFKA_SSL_PORT" != "$KAFKA_PORT" && "$KAFKA_SSL_PORT" != "$KAFKA_CONTROLLER_PORT" ]] ||
      die "KAFKA_SSL_PORT must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
    [[ "$KAFKA_SASL_MECHANISMS" =~ ^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)(,(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512))*$ ]] ||
      die "KAFKA_SASL_MECHANISMS='$KAFKA_SASL_MECHANISMS': expected a comma-separated list of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
    ;;
  *) die "KAFKA_SECURITY='$KAFKA_SECURITY': expected plaintext or sasl_ssl" ;;
esac
[[ "$KAFKA_AUTHORIZER" == 0 || "$KAFKA_AUTHORIZER" == 1 ]] || die "KAFKA_AUTHORIZER must be 0 or 1"
if [[ "$KAFKA_AUTHORIZER" == 1 && "$KAFKA_SECURITY" != sasl_ssl ]]; then
  die "KAFKA_AUTHORIZER=1 needs KAFKA_SECURITY=sasl_ssl (the broker authenticates itself with its certificate)"
fi

# ---------------------------------------------------------------- helpers

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

read_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  printf '%s' "$pid"
}

# pid_is_broker PID: the process exists and is our kafka.Kafka JVM for this data dir.
pid_is_broker() {
  local pid="$1"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$PROPS"* ]] || return 1
  fi
  return 0
}

running_pid() {
  local pid
  pid="$(read_pid)"
  if pid_is_broker "$pid"; then printf '%s' "$pid"; fi
}

with_lock() {
  mkdir -p "$(dirname -- "$LOCK_FILE")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    if ! flock -w 900 9; then die "could not take lock $LOCK_FILE within 900 s"; fi
  fi
}

find_java() {
  local cand=()
  [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]] && cand+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && cand+=("$(command -v java)")
  local j
  for j in /usr/lib/jvm/*/bin/java; do [[ -x "$j" ]] && cand+=("$j"); done
  local FIRST_MAJOR=""
  ((${#cand[@]} > 0)) && FIRST_MAJOR="$(java_major "${cand[0]}")"
  for j in "${cand[@]}"; do
    local major
    major="$(java_major "$j")"
    if [[ -n "$major" ]] && ((major >= 17)); then
      if [[ "$j" != "${cand[0]}" ]]; then
        log "warning: ${cand[0]} is Java ${FIRST_MAJOR:-?} (< 17); using $j (Java $major)"
      fi
      JAVA_BIN="$j"
      JAVA_MAJOR="$major"
      return 0
    fi
  done
  if ((${#cand[@]} == 0)); then
    die "no java found: set JAVA_HOME or put java >= 17 on PATH (e.g. apt-get install openjdk-17-jre-headless)"
  fi
  die "Kafka 4.x needs Java >= 17; found only: $(for j in "${cand[@]}"; do printf '%s (%s) ' "$j" "$(java_major "$j" || true)"; done). Set JAVA_HOME to a JDK 17+."
}

# java_major JAVA: prints the major version (8 for 1.8.x).
java_major() {
  local out ver
  out="$("$1" -version 2>&1 | head -n 1)" || return 0
  ver="$(sed -n 's/.*version "\([^"]*\)".*/\1/p' <<<"$out")"
  [[ -n "$ver" ]] || return 0
  if [[ "$ver" == 1.* ]]; then ver="${ver#1.}"; fi
  printf '%s' "${ver%%[.+_-]*}"
}

pom_hash() {
  { printf '%s\n' "$KAFKA_VERSION"; cat "$SCRIPT_DIR/pom.xml"; } | sha256sum | cut -d' ' -f1
}

# ensure_jars: materialise the broker classpath into $LIB_DIR once.
ensure_jars() {
  local want
  want="$(pom_hash)"
  if [[ -f "$CACHE_MARKER" && "$(cat "$CACHE_MARKER" 2>/dev/null)" == "$want" ]] && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "Kafka jars not cached in $LIB_DIR and 'mvn' is not installed (apt-get install maven)"
  mkdir -p "$CACHE_DIR"
  # several data dirs may share one cache: serialise the download
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$CACHE_DIR/.lock"
    flock -w 900 8 || die "could not take lock $CACHE_DIR/.lock within 900 s"
    if [[ -f "$CACHE_MARKER" && "$(cat "$CACHE_MARKER" 2>/dev/null)" == "$want" ]] && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
      exec 8>&-
      return 0
    fi
  fi
  local tmp="$CACHE_DIR/lib.tmp.$$"
  rm -rf "$tmp"
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven into $LIB_DIR (first run only; may take a few minutes)"
  local t0=$SECONDS
  # mvn picks its JVM from JAVA_HOME; hand it the one we validated. Its output
  # goes to a file (shown on failure) so stdout stays clean for eval.
  local mvn_log="$CACHE_DIR/mvn.log"
  # shellcheck disable=SC2086
  if ! JAVA_HOME="$(dirname -- "$(dirname -- "$(readlink -f "$JAVA_BIN")")")" \
      mvn -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" \
        ${KAFKA_MAVEN_ARGS:-} \
        dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime \
        </dev/null >"$mvn_log" 2>&1 8>&- 9>&-; then
    rm -rf "$tmp"
    sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | grep -E 'ERROR|FAIL|Could not' | head -n 30 >&2 || true
    die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION (full log: $mvn_log; is Maven Central reachable? try KAFKA_VERSION=<other 4.x>)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "mvn finished but no kafka_2.13 jar in $tmp"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  printf '%s\n' "$want" >"$CACHE_MARKER"
  log "cached $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR ($((SECONDS - t0)) s)"
  exec 8>&-
}

# JVM command line (without the main class) shared by StorageTool and the broker.
java_argv() {
  JAVA_ARGV=("$JAVA_BIN")
  local opt
  # word-split the user-supplied option strings on purpose
  for opt in $KAFKA_HEAP_OPTS; do JAVA_ARGV+=("$opt"); done
  JAVA_ARGV+=(
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dkafka.logs.dir=$LOG_DIR"
    "-Dlog4j2.configurationFile=$LOG4J_CONF"
  )
  for opt in ${KAFKA_JVM_OPTS:-}; do JAVA_ARGV+=("$opt"); done
  JAVA_ARGV+=(-cp "$LIB_DIR/*")
}

java_cmd() {
  java_argv
  "${JAVA_ARGV[@]}" "$@"
}

write_props() {
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$KAFKA_LOG_DIRS"
  if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    check_security_dir
    LISTENER_PROPS="$(security_props)"
  else
    LISTENER_PROPS="$(plaintext_props)"
  fi
  cat >"$PROPS.tmp" <<EOF
# Generated by deploy/kafka/kafka.sh on every 'up'; edits are overwritten.
# Single-node KRaft (combined broker+controller) for tests/benchmarks.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
$LISTENER_PROPS
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_LOG_DIRS

# single replica everywhere
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# test friendliness
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
transaction.abort.timed.out.transaction.cleanup.interval.ms=10000
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=33554432
num.network.threads=3
num.io.threads=4
EOF
  if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
    printf '\n# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$PROPS.tmp"
  fi
  mv "$PROPS.tmp" "$PROPS"
}

plaintext_props() {
  cat <<EOF
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
}

# ------------------------------------------------------- security mode

# check_security_dir: the PEM files of KAFKA_SECURITY_DIR exist.
check_security_dir() {
  [[ -n "$KAFKA_SECURITY_DIR" ]] || die "KAFKA_SECURITY=sasl_ssl needs KAFKA_SECURITY_DIR (ca.pem, broker.pem; optional users)"
  [[ -d "$KAFKA_SECURITY_DIR" ]] || die "KAFKA_SECURITY_DIR=$KAFKA_SECURITY_DIR is not a directory"
  KAFKA_SECURITY_DIR="$(cd -- "$KAFKA_SECURITY_DIR" && pwd -P)"
  local f
  for f in ca.pem broker.pem; do
    [[ -r "$KAFKA_SECURITY_DIR/$f" ]] || die "KAFKA_SECURITY_DIR=$KAFKA_SECURITY_DIR has no readable $f"
  done
  grep -q -- '-----BEGIN PRIVATE KEY-----' "$KAFKA_SECURITY_DIR/broker.pem" ||
    die "$KAFKA_SECURITY_DIR/broker.pem must hold an unencrypted PKCS#8 key (BEGIN PRIVATE KEY) and the certificate chain"
}

# read_users: USERS=(name password ...) from $KAFKA_SECURITY_DIR/users, lines
# "name:password" (# comments); names and passwords are [A-Za-z0-9._-]+ so
# that they need no quoting in JAAS or in --add-scram.
read_users() {
  USERS=()
  local file="$KAFKA_SECURITY_DIR/users" line n=0
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [[ -n "$line" ]] || continue
    [[ "$line" =~ ^([A-Za-z0-9._-]+):([A-Za-z0-9._-]+)$ ]] ||
      die "$file line $n: expected name:password, both of [A-Za-z0-9._-]"
    USERS+=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
  done <"$file"
}

security_props() {
  read_users
  local ssl_port="$KAFKA_SSL_PORT" m lower plain_users="" i
  for ((i = 0; i < ${#USERS[@]}; i += 2)); do
    plain_users+=" user_${USERS[i]}=\"${USERS[i + 1]}\""
  done
  cat <<EOF
# KAFKA_SECURITY=sasl_ssl: SASL over TLS for clients, mutual TLS on the SSL
# listener and between the broker and its controller (the broker's
# certificate, CN=broker, is its principal User:broker).
listeners=SASL_SSL://$KAFKA_HOST:$KAFKA_PORT,SSL://$KAFKA_HOST:$ssl_port,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$KAFKA_HOST:$KAFKA_PORT,SSL://$KAFKA_HOST:$ssl_port,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=SSL
listener.security.protocol.map=CONTROLLER:SSL,SSL:SSL,SASL_SSL:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_SECURITY_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECURITY_DIR/ca.pem
ssl.endpoint.identification.algorithm=https
ssl.principal.mapping.rules=RULE:^CN=([^,]+)(,.*)?\$/\$1/,DEFAULT
listener.name.ssl.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
sasl.enabled.mechanisms=$KAFKA_SASL_MECHANISMS
listener.name.sasl_ssl.sasl.enabled.mechanisms=$KAFKA_SASL_MECHANISMS
EOF
  for m in ${KAFKA_SASL_MECHANISMS//,/ }; do
    lower="${m,,}"
    case "$m" in
      PLAIN) echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;" ;;
      SCRAM-*) echo "listener.name.sasl_ssl.$lower.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;" ;;
    esac
  done
  if [[ "$KAFKA_AUTHORIZER" == 1 ]]; then
    cat <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;$KAFKA_SUPER_USERS
EOF
  fi
}

# scram_args: --add-scram arguments for every user and SCRAM mechanism.
scram_args() {
  SCRAM_ARGS=()
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] || return 0
  read_users
  local m i
  for m in ${KAFKA_SASL_MECHANISMS//,/ }; do
    [[ "$m" == SCRAM-* ]] || continue
    for ((i = 0; i < ${#USERS[@]}; i += 2)); do
      SCRAM_ARGS+=(--add-scram "$m=[name=${USERS[i]},password=${USERS[i + 1]}]")
    done
  done
}

format_storage() {
  if [[ -f "$KAFKA_LOG_DIRS/meta.properties" ]]; then
    # A standalone-formatted KRaft log records the controller endpoint; a
    # different port later would leave the quorum unreachable.
    check_ports_match "storage in $DATA_DIR was formatted for"
    return 0
  fi
  local id
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    id="$(cat "$CLUSTER_ID_FILE")"
  else
    id="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$STDOUT_LOG" | tail -n 1 | tr -d '[:space:]')"
    [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid returned '$id' (see $STDOUT_LOG)"
    printf '%s\n' "$id" >"$CLUSTER_ID_FILE"
  fi
  log "formatting $KAFKA_LOG_DIRS (cluster id $id)"
  scram_args
  if ! java_cmd kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" "${SCRAM_ARGS[@]}" >>"$STDOUT_LOG" 2>&1 </dev/null; then
    tail -n 30 "$STDOUT_LOG" >&2 || true
    die "kafka.tools.StorageTool format failed (full output in $STDOUT_LOG)"
  fi
  printf '%s %s\n' "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" >"$PORTS_FILE"
}

# check_ports_match WHAT: die if $DATA_DIR belongs to a broker on other ports.
check_ports_match() {
  local have=""
  [[ -f "$PORTS_FILE" ]] && have="$(cat "$PORTS_FILE")"
  if [[ -n "$have" && "$have" != "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ]]; then
    die "$1 ports (broker controller) '$have' but KAFKA_PORT/KAFKA_CONTROLLER_PORT are '$KAFKA_PORT $KAFKA_CONTROLLER_PORT'; use the same ports, another INVROUTE_KAFKA_DATA, or 'kafka.sh down --wipe' first"
  fi
}

# wait_ready PID: until the broker logged its start message and the port answers.
wait_ready() {
  local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup"
      fail_dump
      return 1
    fi
    if grep -qF "$READY_MARKER" "$BROKER_LOG" 2>/dev/null && port_open "$KAFKA_PORT"; then
      return 0
    fi
    sleep 0.5
  done
  log "broker not ready after ${KAFKA_START_TIMEOUT} s (KAFKA_START_TIMEOUT)"
  fail_dump
  return 1
}

fail_dump() {
  {
    echo "----- last 50 lines of $BROKER_LOG -----"
    tail -n 50 "$BROKER_LOG" 2>/dev/null || echo "(no broker log)"
    if [[ -s "$STDOUT_LOG" ]]; then
      echo "----- last 20 lines of $STDOUT_LOG -----"
      tail -n 20 "$STDOUT_LOG"
    fi
    echo "-----"
  } >&2
}

warn_unknown_configs() {
  local bad
  bad="$(grep -E "isn't a known config|Unknown configuration" "$BROKER_LOG" 2>/dev/null | sed 's/^/  /' | head -n 10 || true)"
  [[ -z "$bad" ]] || log "broker reported unknown configs:"$'\n'"$bad"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  with_lock
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    check_ports_match "pid $pid from $DATA_DIR is running on"
    if port_open "$KAFKA_PORT"; then
      log "already running (pid $pid, data $DATA_DIR)"
      echo "KAFKA_BROKERS=$BROKERS"
      return 0
    fi
    log "pid $pid is alive but $BROKERS does not answer yet; waiting"
    wait_ready "$pid" || die "broker (pid $pid) is not healthy; try 'kafka.sh down' then 'up'"
    echo "KAFKA_BROKERS=$BROKERS"
    return 0
  fi
  rm -f "$PID_FILE"
  local p ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] && ports+=("$KAFKA_SSL_PORT")
  for p in "${ports[@]}"; do
    if port_open "$p"; then
      die "port $KAFKA_HOST:$p is already in use by another process (not a broker started from $DATA_DIR); stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
    fi
  done

  find_java
  [[ -r "$LOG4J_CONF" ]] || die "log4j2 config $LOG4J_CONF not found"
  local t0=$SECONDS
  ensure_jars
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  : >"$STDOUT_LOG"
  write_props
  format_storage

  # fresh broker log per start so the readiness grep only sees this run
  local f
  for f in "$BROKER_LOG" "$BROKER_LOG".[0-9]*; do
    [[ -e "$f" ]] && mv -f "$f" "$f.prev"
  done

  log "starting Kafka $KAFKA_VERSION (java $JAVA_MAJOR, security $KAFKA_SECURITY) on $BROKERS, controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT, data $DATA_DIR"
  # setsid+nohup: the broker outlives this shell and its process group; the
  # inner bash records its own pid and then execs the JVM (same pid).
  java_argv
  # shellcheck disable=SC2016 # $$ and $1 expand in the inner shell
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch \
    "$PID_FILE" "${JAVA_ARGV[@]}" kafka.Kafka "$PROPS" \
    >>"$STDOUT_LOG" 2>&1 </dev/null 8>&- 9>&- &
  disown || true

  # the pid file appears as soon as the launcher shell ran
  local i
  for ((i = 0; i < 100; i++)); do
    pid="$(read_pid)"
    [[ -n "$pid" ]] && break
    sleep 0.1
  done
  [[ -n "$pid" ]] || { fail_dump; die "broker launcher did not write $PID_FILE"; }

  if ! wait_ready "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PID_FILE"
    die "Kafka failed to start"
  fi
  warn_unknown_configs
  log "ready in $((SECONDS - t0)) s (pid $pid; log $BROKER_LOG)"
  echo "KAFKA_BROKERS=$BROKERS"
}

cmd_down() {
  local wipe="$KAFKA_WIPE" arg
  for arg in "$@"; do
    case "$arg" in
      --wipe) wipe=1 ;;
      *) die "down: unknown argument '$arg' (expected --wipe)" ;;
    esac
  done
  with_lock
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    log "stopping broker pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "still alive after ${KAFKA_STOP_TIMEOUT} s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "stopped"
  else
    log "not running"
    if port_open "$KAFKA_PORT"; then
      log "note: something else listens on $BROKERS (not started from $DATA_DIR); left alone"
    fi
  fi
  rm -f "$PID_FILE"
  if [[ "$wipe" == 1 ]]; then
    case "$DATA_DIR" in
      "" | / | /tmp | /root | /home | "$_home")
        die "refusing to wipe INVROUTE_KAFKA_DATA='$DATA_DIR'" ;;
    esac
    if [[ -d "$DATA_DIR" ]]; then
      if [[ -n "$(ls -A "$DATA_DIR")" && ! -e "$PROPS" && ! -e "$KAFKA_LOG_DIRS" ]]; then
        die "refusing to wipe $DATA_DIR: it does not look like a kafka.sh data dir"
      fi
      rm -rf -- "$DATA_DIR"
      log "wiped $DATA_DIR"
    fi
  fi
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]] && port_open "$KAFKA_PORT"; then
    log "running (pid $pid, data $DATA_DIR)"
    echo "KAFKA_BROKERS=$BROKERS"
    return 0
  fi
  if [[ -n "$pid" && -f "$PORTS_FILE" && "$(cat "$PORTS_FILE")" != "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ]]; then
    log "pid $pid from $DATA_DIR runs on ports '$(cat "$PORTS_FILE")', not '$KAFKA_PORT $KAFKA_CONTROLLER_PORT'"
  elif [[ -n "$pid" ]]; then
    log "pid $pid alive but $BROKERS not answering (starting or unhealthy)"
  else
    log "not running"
  fi
  return 3
}

cmd_logs() {
  local n="${1:-100}"
  [[ "$n" =~ ^[0-9]+$ ]] || die "logs: expected a line count, got '$n'"
  if [[ -f "$BROKER_LOG" ]]; then
    tail -n "$n" "$BROKER_LOG"
  else
    log "no broker log at $BROKER_LOG"
  fi
  if [[ -s "$STDOUT_LOG" ]]; then
    echo "----- $STDOUT_LOG (stdout/stderr) -----"
    tail -n 20 "$STDOUT_LOG"
  fi
}

cmd_env() {
  cat <<EOF
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_BROKERS=$BROKERS
KAFKA_CONTROLLER=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
INVROUTE_KAFKA_HOME=$CACHE_DIR
INVROUTE_KAFKA_DATA=$DATA_DIR
BROKER_LOG=$BROKER_LOG
KAFKA_SECURITY=$KAFKA_SECURITY
EOF
  if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    cat <<EOF
KAFKA_SSL_BROKERS=$KAFKA_HOST:$KAFKA_SSL_PORT
KAFKA_SECURITY_DIR=$KAFKA_SECURITY_DIR
KAFKA_SASL_MECHANISMS=$KAFKA_SASL_MECHANISMS
KAFKA_AUTHORIZER=$KAFKA_AUTHORIZER
EOF
  fi
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up | start) cmd_up "$@" ;;
    down | stop) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    logs | log) cmd_logs "$@" ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    "") usage; exit 2 ;;
    *) log "unknown command '$cmd'"; usage; exit 2 ;;
  esac
}

main "$@"
