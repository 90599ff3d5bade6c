# Shared settings of the local stack; sourced by the other scripts.
# Everything the stack writes lives under .devstack/ in the repository.

DEVSTACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${PAYSTREAM_DEVSTACK_DIR:-$DEVSTACK_ROOT/.devstack}"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR"

NISSHI_VERSION="0.8.1"
KAFKA_PORT="${PAYSTREAM_KAFKA_PORT:-9092}"
REGISTRY_PORT="${PAYSTREAM_SCHEMA_REGISTRY_PORT:-8081}"
export PAYSTREAM_KAFKA_BOOTSTRAP="${PAYSTREAM_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
export PAYSTREAM_SCHEMA_REGISTRY_URL="${PAYSTREAM_SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT}"
export PATH="$HOME/.cargo/bin:$PATH"

# One database and one role per service: each service owns its data and no
# service reads another's tables. Local passwords equal the role names.
SERVICE_DATABASES=(schema_registry gateway validation cbs_debit rtgs_gateway notifications audit)
# The role tests use to create a fresh database per test.
TEST_ROLE="paystream_test"

log() { printf '[devstack] %s\n' "$*" >&2; }

# Every binary the stack and the demo run, built by one cargo invocation (one
# dependency graph, both cores busy throughout) with cargo's progress shown,
# so a first build on a fresh machine is never a silent terminal.
STACK_BINARIES=(schema-registry paystream-provision sandbox gateway validation cbs-debit
  rtgs-gateway notifications audit paystream)
build_stack_binaries() {
  log "building ${STACK_BINARIES[*]} (a first build takes a few minutes)"
  cargo build $(printf -- '--bin %s ' "${STACK_BINARIES[@]}")
}
die() { log "error: $*"; exit 1; }

# Succeeds once something accepts TCP connections on host:port, or fails after
# the given number of seconds.
wait_for_port() {
  local host="$1" port="$2" seconds="$3" what="$4"
  local deadline=$((SECONDS + seconds))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || die "$what did not open $host:$port within ${seconds}s"
    sleep 0.2
  done
}

# Runs a command in the background, detached, with its pid and log in the state dir.
start_daemon() {
  local name="$1"; shift
  nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

is_running() {
  local pidfile="$RUN_DIR/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# The pid and command name of the process listening on a local TCP port, if any.
listener_pid() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; }
listener_name() { local pid; pid="$(listener_pid "$1")"; [[ -n "$pid" ]] && cat "/proc/$pid/comm" 2>/dev/null; }

stop_daemon() {
  local name="$1" pidfile="$RUN_DIR/$1.pid"
  if is_running "$name"; then
    local pid; pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$pidfile"
}
