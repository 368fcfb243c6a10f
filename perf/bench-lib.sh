# shellcheck shell=bash
# Shared by the load benchmarks (run-gateway-bench.sh, and through
# controller-mesh.sh run-controller-bench.sh, flamegraph.sh and scaling.sh):
# ports, starting release services, stopping them, and reading CPU use from /proc.
# The sourcing script sets bin_dir and out_dir; `preload` optionally holds
# extra KEY=VALUE words for every service (the gateway bench's what-if shim).
# `start_probe`, when set (e.g. /healthz), is the path `start` waits for
# instead of /readyz: a service whose dependency is down on purpose (Suite 7's
# unresponsive OPA) is live but never ready.

pids=()
preload=()

# port_busy ADDR: something already listens on ADDR's port.
port_busy() { ss -Hltn "sport = :${1##*:}" 2>/dev/null | grep -q .; }

# check_ports PORT...: dies unless every port is a number in 1024-65535
# outside the kernel's ephemeral range (ip_local_port_range). Outgoing
# connections take their local port from that range, so a listener there
# fails to bind now and then when one happens to hold it.
check_ports() {
  local low=32768 high=60999 port
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r low high </proc/sys/net/ipv4/ip_local_port_range
  fi
  for port in "$@"; do
    if [[ ! "$port" =~ ^[0-9]+$ ]] || ((port < 1024 || port > 65535)); then
      die "port '$port' is not a port number in 1024-65535"
    fi
    ((port < low || port > high)) ||
      die "port $port lies in the ephemeral port range $low-$high (/proc/sys/net/ipv4/ip_local_port_range), where outgoing connections take their local ports and a bind fails now and then; choose ports outside it (PERF_PORT_BASE, default 24050)"
  done
}

# mesh_ports BASE: the benchmarks' port layout (gateway gRPC/HTTP BASE+1 /
# BASE+81, controller BASE+2 / BASE+82, ledger-writer BASE+3 / BASE+83),
# checked with check_ports. Sets gw_grpc gw_http ct_grpc ct_http lw_grpc lw_http.
mesh_ports() {
  local base="$1"
  [[ "$base" =~ ^[0-9]+$ ]] || die "PERF_PORT_BASE '$base' is not a number"
  check_ports "$((base + 1))" "$((base + 2))" "$((base + 3))" "$((base + 81))" "$((base + 82))" "$((base + 83))"
  gw_grpc="127.0.0.1:$((base + 1))"; gw_http="127.0.0.1:$((base + 81))"
  ct_grpc="127.0.0.1:$((base + 2))"; ct_http="127.0.0.1:$((base + 82))"
  lw_grpc="127.0.0.1:$((base + 3))"; lw_http="127.0.0.1:$((base + 83))"
}

# proc_stat PID AWK_EXPR: AWK_EXPR over the fields of /proc/PID/stat after
# the command name (which may hold spaces): $1 state, $12 utime, $13 stime,
# $14 cutime, $15 cstime (proc(5)'s field N is $(N-2)). Fails when PID is gone.
proc_stat() { awk '{ sub(/^.*\) /, ""); print '"$2"' }' "/proc/$1/stat" 2>/dev/null; }

# Running and not yet a zombie (kill -0 also succeeds on a zombie).
alive() { [[ "$(proc_stat "$1" '$1')" =~ ^[^ZX]$ ]]; }

# Stops every service started with `start`: TERM, 10 s grace, then KILL; they
# are then forgotten, so the next `start` begins a new list.
stop_services() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

# start NAME HTTP_ADDR KEY=VALUE...: runs a release binary with exactly these
# variables (plus PATH), logs to $out_dir/NAME.log, waits for /readyz (or
# $start_probe).
start() {
  local name="$1" http_addr="$2"
  shift 2
  say "==> starting $name"
  # TOKIO_WORKER_THREADS, when set, sizes every service's runtime (what a
  # CPU limit does in a container).
  local workers=()
  [[ -n "${TOKIO_WORKER_THREADS:-}" ]] && workers=(TOKIO_WORKER_THREADS="$TOKIO_WORKER_THREADS")
  env -i PATH="$PATH" RUST_LOG="${RUST_LOG:-info}" "${workers[@]}" "${preload[@]}" "$@" "$bin_dir/$name" >"$out_dir/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  eval "${name//-/_}_pid=$pid"
  for _ in $(seq 1 120); do
    [[ "$(http_status "http://$http_addr${start_probe:-/readyz}")" == "200" ]] && return 0
    if ! alive "$pid"; then
      tail -n 20 "$out_dir/$name.log" >&2
      die "$name exited during start-up"
    fi
    sleep 0.5
  done
  tail -n 20 "$out_dir/$name.log" >&2
  die "$name did not answer ${start_probe:-/readyz} in 60 s"
}

# CPU ticks (user + system) of one process, of one process with its children
# it has waited for (Suite 7: the RLM engine's bridge is a Python child of the
# controller, started and reaped once per run, and its CPU is the engine's), of
# all PostgreSQL processes (the gateway bench), of the PostgreSQL processes
# serving one database, and of the machine (total, idle).
ticks_of() { proc_stat "$1" '$12 + $13' || echo 0; }
ticks_with_children_of() { proc_stat "$1" '$12 + $13 + $14 + $15' || echo 0; }
postgres_ticks() {
  local total=0 p
  for p in /proc/[0-9]*; do
    [[ "$(cat "$p/comm" 2>/dev/null)" == postgres ]] || continue
    total=$((total + $(ticks_of "${p#/proc/}")))
  done
  echo "$total"
}
# postgres_pid_ticks DB: "pid ticks" of each PostgreSQL process except the
# backends and autovacuum workers of other databases than DB (told apart by
# their process titles), so other work on the server does not count.
postgres_pid_ticks() {
  local db="$1" p title
  local backend='^postgres: [^:]+: [^ ]+ ([^ ]+) ([^ ]+\([0-9]+\)|\[local\])' worker='autovacuum worker ([^ ]+)'
  for p in /proc/[0-9]*; do
    [[ "$(cat "$p/comm" 2>/dev/null)" == postgres ]] || continue
    title="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
    if [[ "$title" =~ $backend || "$title" =~ $worker ]]; then
      [[ "${BASH_REMATCH[1]}" == "$db" ]] || continue
    fi
    echo "${p#/proc/} $(ticks_of "${p#/proc/}")"
  done
}
# ticks_delta BEFORE AFTER: ticks burnt between two postgres_pid_ticks files,
# per pid: a process that started meanwhile counts whole, one that exited is
# lost (its last ticks are unknown), so the sum is never negative.
ticks_delta() {
  awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; if (d > 0) total += d } END { print total + 0 }' "$1" "$2"
}
machine_ticks() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8, $5+$6 }' /proc/stat; }

# Waits (up to PERF_QUIET_WAIT s, default 180) for the machine to be >= 85 %
# idle over 3 s, so other work does not skew the figures.
wait_quiet() {
  local limit="${PERF_QUIET_WAIT:-180}" waited=0 a0 i0 a1 i1
  (( limit > 0 )) || return 0
  while (( waited < limit )); do
    read -r a0 i0 < <(machine_ticks); sleep 3; read -r a1 i1 < <(machine_ticks)
    (( (i1 - i0) * 100 >= (a1 - a0) * 85 )) && return 0
    (( waited == 0 )) && say "    waiting for the machine to be quiet (other processes are busy)..."
    waited=$((waited + 3))
  done
  say "    WARNING: the machine is still busy after ${limit}s; figures will be pessimistic (see the report's server_cpu)"
}

# Service tokens for this run: ledger-writer knows the gateway and the
# controller by them (fresh random values, never written to disk).
perf_token() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
perf_gateway_token="$(perf_token)"
perf_controller_token="$(perf_token)"
