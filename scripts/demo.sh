#!/usr/bin/env bash
# A five-node dkv cluster on this machine, for trying the API by hand.
#
#   scripts/demo.sh [start]   build ./dkv if needed, start an orchestrator on 7000 and nodes on
#                             8080-8084 (Redis protocol on 6380-6384), wait until every member sees all five nodes UP, insert
#                             the original project's four keys, print curl lines to try
#   scripts/demo.sh stop      stop exactly the processes the last start recorded
#   scripts/demo.sh restart   stop, then start again: the nodes come back with their data
#                             (each keeps it in .dkv-demo/data-PORT, --data-dir), shown by
#                             reading the demo keys back instead of inserting them
#
# State lives in .dkv-demo/ at the repo root (gitignored): one log per process, `pids`, one
# "<pid> <name>" line per process, and each member's data dir `data-PORT` (the orchestrator's,
# data-7000, holds only its ring, incarnation and clock; delete .dkv-demo to start from nothing). Needs bash and curl; nothing else.
#
# Other ports or another state folder (the tests use them to run it next to a demo of yours):
#   DEMO_ORCHESTRATOR_PORT=7100 DEMO_NODE_PORTS="8180 8181 8182 8183 8184" DEMO_DIR=/tmp/d \
#     DEMO_RESP_PORTS="6480 6481 6482 6483 6484" scripts/demo.sh   (the same DEMO_DIR for stop)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly DEMO_DIR="${DEMO_DIR:-.dkv-demo}"
readonly PID_FILE="$DEMO_DIR/pids"
readonly HOST="127.0.0.1"
readonly ORCHESTRATOR_PORT="${DEMO_ORCHESTRATOR_PORT:-7000}"
read -r -a NODE_PORTS <<<"${DEMO_NODE_PORTS:-8080 8081 8082 8083 8084}"
readonly NODE_PORTS
# Each node's --resp-port (the Redis protocol), in the order of NODE_PORTS.
read -r -a RESP_PORTS <<<"${DEMO_RESP_PORTS:-6380 6381 6382 6383 6384}"
readonly RESP_PORTS
# Start-up is registration plus one view push: well under a second on loopback. The deadline
# only bounds a failure.
readonly READY_DEADLINE_S=20
# The whole demo stops at once, so no node should try a graceful leave (there would be nobody to
# hand data to): the second SIGTERM makes dkv exit at once (src/main.ts). Past this: SIGKILL.
readonly STOP_DEADLINE_S=5

say() { printf 'dkv demo: %s\n' "$*"; }
fail() {
  printf 'dkv demo: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: scripts/demo.sh [start|stop|restart]
  start (default)  start an orchestrator (port 7000) and five nodes (8080-8084, Redis protocol
                   on 6380-6384), insert demo keys (or, when the nodes' data dirs hold data
                   already, read them back)
  stop             stop the processes recorded in .dkv-demo/pids (their data stays on disk)
  restart          stop, then start: the data survives (--data-dir .dkv-demo/data-PORT)
Environment: DEMO_ORCHESTRATOR_PORT, DEMO_NODE_PORTS ("8080 8081 ..."),
             DEMO_RESP_PORTS ("6380 6381 ..."), DEMO_DIR (.dkv-demo)
EOF
}

# True when something accepts a TCP connection on 127.0.0.1:$1.
port_in_use() {
  if command -v timeout >/dev/null; then
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
  fi
}

# Does pid $1 still run a dkv process? (Guards against a recycled pid.)
is_dkv() {
  local args
  args="$(ps -p "$1" -o args= 2>/dev/null)" || return 1
  [[ "$args" == *"dkv --role"* ]]
}

# Stop every process in the pid file: TERM twice (the second skips a node's graceful leave), then
# KILL after STOP_DEADLINE_S. Prints what it did.
stop_recorded() {
  if [[ ! -f "$PID_FILE" ]]; then
    say "nothing to stop (no $PID_FILE)"
    return 0
  fi
  local pid name
  local -a pids=() names=() stopped=()
  while read -r pid name; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if is_dkv "$pid"; then
      pids+=("$pid")
      names+=("$name")
    fi
  done <"$PID_FILE"
  if ((${#pids[@]} == 0)); then
    rm -f "$PID_FILE"
    say "no recorded process was still running (removed $PID_FILE)"
    return 0
  fi
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 0.2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_DEADLINE_S)) alive i
  while :; do
    alive=0
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    ((alive == 0 || SECONDS >= deadline)) && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      stopped+=("${names[$i]} (pid ${pids[$i]}, SIGKILL)")
    else
      stopped+=("${names[$i]} (pid ${pids[$i]})")
    fi
  done
  rm -f "$PID_FILE"
  say "stopped ${#stopped[@]} process(es):"
  printf '  %s\n' "${stopped[@]}"
}

ensure_built() {
  if [[ ! -x node_modules/.bin/bun ]]; then
    say "node_modules/.bin/bun is missing: running npm ci"
    npm ci
  fi
  if [[ ! -x ./dkv ]] || [[ -n "$(find src -type f -newer ./dkv -print -quit)" ]]; then
    say "./dkv is missing or older than src/: running npm run build"
    npm run build
  fi
}

# Count of the demo's nodes that the member at port $1 lists with status UP. The /all-nodes JSON
# is written by memberJson() in src/http/public-routes.ts: fields id, role, status in that order.
nodes_up_seen_by() {
  local body port n=0
  body="$(curl -sf --max-time 1 "http://$HOST:$1/all-nodes" 2>/dev/null)" || {
    echo 0
    return
  }
  for port in "${NODE_PORTS[@]}"; do
    if [[ "$body" == *"\"id\":\"$HOST:$port\",\"role\":\"node\",\"status\":\"UP\""* ]]; then
      n=$((n + 1))
    fi
  done
  echo "$n"
}

# Any recorded process that has exited: print its name and log tail, return 0.
find_dead() {
  local pid name
  while read -r pid name; do
    if ! kill -0 "$pid" 2>/dev/null; then
      printf 'dkv demo: %s (pid %s) exited; the end of %s:\n' "$name" "$pid" \
        "$DEMO_DIR/$name.log" >&2
      tail -n 5 "$DEMO_DIR/$name.log" | sed 's/^/  /' >&2
      return 0
    fi
  done <"$PID_FILE"
  return 1
}

abort_start() {
  printf 'dkv demo: %s\n' "$*" >&2
  stop_recorded >&2
  exit 1
}

# Launch `./dkv ARGS...` in the background, detached from this shell, and record it as $1.
launch() {
  local name="$1"
  shift
  nohup ./dkv "$@" </dev/null >"$DEMO_DIR/$name.log" 2>&1 &
  echo "$! $name" >>"$PID_FILE"
}

start() {
  ensure_built
  local port
  if ((${#RESP_PORTS[@]} != ${#NODE_PORTS[@]})); then
    fail "DEMO_RESP_PORTS needs one port per node (${#NODE_PORTS[@]}), got ${#RESP_PORTS[@]}"
  fi
  for port in "$ORCHESTRATOR_PORT" "${NODE_PORTS[@]}" "${RESP_PORTS[@]}"; do
    if port_in_use "$port"; then
      fail "port $port is already in use (is a demo already running? try scripts/demo.sh stop)"
    fi
  done
  mkdir -p "$DEMO_DIR"
  if [[ -f "$PID_FILE" ]]; then
    say "ports are free, so $PID_FILE is stale: replacing it"
  fi
  : >"$PID_FILE"
  local had_data=0
  if [[ -d "$DEMO_DIR/data-${NODE_PORTS[0]}" ]]; then had_data=1; fi
  # From here on, an interrupt stops what was started.
  trap 'abort_start "interrupted"' INT TERM

  launch orchestrator --role orchestrator --port "$ORCHESTRATOR_PORT" \
    --data-dir "$DEMO_DIR/data-$ORCHESTRATOR_PORT"
  local i
  for i in "${!NODE_PORTS[@]}"; do
    port="${NODE_PORTS[$i]}"
    launch "node-$port" --role node --orchestrator="$HOST:$ORCHESTRATOR_PORT" --port "$port" \
      --data-dir "$DEMO_DIR/data-$port" --resp-port "${RESP_PORTS[$i]}"
  done
  say "started an orchestrator on $ORCHESTRATOR_PORT and ${#NODE_PORTS[@]} nodes on" \
    "${NODE_PORTS[*]} (Redis protocol on ${RESP_PORTS[*]}); waiting for all of them to be UP"

  # Ready = the orchestrator lists all five nodes UP, and so does every node: a node still
  # holding an older view would place keys on other replicas than its peers.
  local want=${#NODE_PORTS[@]} deadline=$((SECONDS + READY_DEADLINE_S)) ready seen
  while :; do
    if find_dead; then abort_start "a process died during start-up"; fi
    ready=1
    seen="$(nodes_up_seen_by "$ORCHESTRATOR_PORT")"
    if ((seen < want)); then ready=0; fi
    if ((ready)); then
      for port in "${NODE_PORTS[@]}"; do
        if (($(nodes_up_seen_by "$port") < want)); then
          ready=0
          break
        fi
      done
    fi
    ((ready)) && break
    if ((SECONDS >= deadline)); then
      abort_start "not ready after ${READY_DEADLINE_S}s: the orchestrator sees $seen of $want" \
        "nodes UP (logs in $DEMO_DIR/)"
    fi
    sleep 0.2
  done
  say "all $want nodes are UP"

  if ((had_data)); then
    # Started again on data dirs that hold data: show it survived.
    say "the nodes started from their data dirs ($DEMO_DIR/data-PORT); reading the demo keys back"
    local key
    for key in best_movie best_year worst_year name; do show "$key"; done
  else
    # The original project's example data.
    put best_movie "Lord of the rings"
    put best_year "2001"
    put worst_year "2020"
    put name "Andrey"
  fi
  trap - INT TERM

  local n0="${NODE_PORTS[0]}" n1="${NODE_PORTS[1]:-${NODE_PORTS[0]}}" \
    n2="${NODE_PORTS[2]:-${NODE_PORTS[0]}}" n3="${NODE_PORTS[3]:-${NODE_PORTS[0]}}" \
    n4="${NODE_PORTS[4]:-${NODE_PORTS[0]}}" stop="scripts/demo.sh stop"
  if [[ "$DEMO_DIR" != ".dkv-demo" ]]; then stop="DEMO_DIR=$DEMO_DIR $stop"; fi
  cat <<EOF

Dashboard: http://$HOST:$n0/ui          (every member serves it; live members, partitions, keys)
Metrics:   curl -s $HOST:$n0/metrics    (Prometheus text format)

Try (any member answers, the orchestrator too):
  curl -s $HOST:$n0/kv/best_movie
  curl -s $HOST:$n3/kv/best_movie
  curl -s $HOST:$ORCHESTRATOR_PORT/kv/best_movie
  curl -s -X POST -H 'Content-Type: text/plain' --data-binary 'The Matrix' $HOST:$n2/kv/best_movie
  curl -s '$HOST:$n4/kv/best_year?consistency=all'
  curl -s $HOST:$n1/kv/all-data              # what this one node stores (it is a replica of)
  curl -s $HOST:$ORCHESTRATOR_PORT/all-nodes                # members and their status
  curl -s $HOST:$n0/all-nodes/best_movie     # the replicas of a key, in preference order
  curl -s -X DELETE $HOST:$n0/kv/name
  curl -s $HOST:$n1/kv/name                  # now 404
  curl -s $HOST:$n2/health
  curl -s $HOST:$n0/cluster/status                 # per node: partitions, keys, hints, moves

Or with the CLI (the same ./dkv; README "The CLI"):
  ./dkv get best_movie --server $HOST:$n0
  ./dkv put best_movie 'Alien' --server $HOST:$n1
  ./dkv status --server $HOST:$n0

Or with any Redis client (README "Redis clients"; every node speaks RESP too):
  redis-cli -p ${RESP_PORTS[0]} get best_movie
  redis-cli -p ${RESP_PORTS[0]}
  redis-benchmark -p ${RESP_PORTS[0]} -t set,get -n 100000 -q

Logs:    $DEMO_DIR/orchestrator.log, $DEMO_DIR/node-$n0.log ... $DEMO_DIR/node-$n4.log
Stop:    $stop
EOF
}

# After a stop: wait (up to STOP_DEADLINE_S) until the demo's ports take no connection.
wait_ports_free() {
  local deadline=$((SECONDS + STOP_DEADLINE_S)) port busy
  while :; do
    busy=0
    for port in "$ORCHESTRATOR_PORT" "${NODE_PORTS[@]}"; do
      if port_in_use "$port"; then busy=1; fi
    done
    ((busy == 0 || SECONDS >= deadline)) && return 0
    sleep 0.1
  done
}

# Read a key through node 8080's public API (a quorum read) and print the answer.
show() {
  local out
  out="$(curl -sS --max-time 5 "http://$HOST:${NODE_PORTS[0]}/kv/$1" 2>&1)" || out="(no answer: $out)"
  say "$1: $out"
}

# Set a key through node 8080's public API; stop everything if it fails.
put() {
  local out
  if ! out="$(curl -sS --max-time 5 -w '\n%{http_code}' -X POST -H 'Content-Type: text/plain' \
    --data-binary "$2" "http://$HOST:${NODE_PORTS[0]}/kv/$1" 2>&1)"; then
    abort_start "could not set $1: $out"
  fi
  local code="${out##*$'\n'}" body="${out%$'\n'*}"
  if [[ "$code" != "200" ]]; then abort_start "setting $1 failed (HTTP $code): $body"; fi
  say "set $1: $body"
}

case "${1:-start}" in
  start) start ;;
  stop) stop_recorded ;;
  restart)
    stop_recorded
    wait_ports_free
    start
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
