# Shared by the bench scripts (sourced, not run): a scratch directory, children stopped on
# exit, waiting for servers, installing packages, starting Arbiter, and running and parsing wrk.
# The wrk functions read ROUNDS, DURATION, WARMUP, THREADS and CONNECTIONS from the script.
# shellcheck shell=bash

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs COMMAND every 0.1 s until it succeeds (return 0), for at most 10 s and only while
# process PID lives; on failure, says so and shows LOG.   wait_for PID LOG COMMAND...
wait_for() {
  local pid=$1 log=$2
  shift 2
  for _ in $(seq 1 100); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$(basename "$0"): server did not start; its output:" >&2
  cat "$log" >&2
  return 1
}

# Waits for a line matching PATTERN in FILE from process PID; prints its port.
listening_port() {
  local file=$1 pattern=$2 pid=$3 line
  wait_for "$pid" "$file" grep -q -E "$pattern" "$file" || return 1
  line=$(grep -m1 -E "$pattern" "$file")
  echo "${line##*:}"
}

# Installs the Debian packages that are missing (as root), without letting their system
# services start (nginx and haproxy would otherwise take port 80 and stay running).
install_packages() {
  local package missing=() status own_policy=
  for package in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "$(basename "$0"): installing ${missing[*]}" >&2
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
  # Should a service have started anyway (a systemd host ignores policy-rc.d), stop it.
  for package in nginx haproxy; do
    if [[ -e /lib/systemd/system/$package.service ]] && pidof -q "$package" 2>/dev/null; then
      { systemctl stop "$package" && systemctl disable "$package"; } >/dev/null 2>&1 \
        || service "$package" stop >/dev/null 2>&1 || true
    fi
  done
}

# A TCP port that nothing on this machine listens on now (for servers that cannot bind port 0
# and report it).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until 127.0.0.1:PORT accepts connections (process PID, its output in LOG).
wait_port() { wait_for "$2" "$3" port_open "$1"; }

# Starts an Arbiter (access log off, one catch-all route to 127.0.0.1:UPSTREAM_PORT, with
# POLICIES appended to that route) and stores its port in the variable named PORT_VARIABLE.
#   start_arbiter NAME UPSTREAM_PORT WORKERS POLICIES PORT_VARIABLE [ACCESS_LOG [BINARY]]
# ACCESS_LOG: [log] access, "off" unless given (e.g. a file in $work). BINARY: build-bench/arbiter
# unless given (bench/compare's BENCH_BASELINE build).
start_arbiter() {
  local name=$1 upstream_port=$2 workers=$3 policies=$4 access=${6:-off} binary=${7:-build-bench/arbiter}
  cat >"$work/$name.toml" <<EOT
[server]
listen = "127.0.0.1:0"
workers = $workers

[log]
access = "$access"

[upstream.backend]
servers = ["127.0.0.1:$upstream_port"]

[[route]]
name = "all"
path = "/*"
upstream = "backend"
$policies
EOT
  "$binary" -c "$work/$name.toml" >"$work/$name.out" 2>&1 &
  pids+=($!)  # here, not in a $(...) subshell, so that cleanup knows it
  local port
  port=$(listening_port "$work/$name.out" '^arbiter: listening on ' "${pids[-1]}")
  printf -v "$5" '%s' "$port"
}

# One wrk output in, "requests_per_second p50_ms p99_ms errors requests" out. A wrk Lua script's
# done() may print "count: expected_non_2xx N": N of the non-2xx answers were the ones the
# script provoked (e.g. 409s to stale writes), and are not errors.
parse_wrk() {
  awk '
    function ms(text,   value, unit) {
      value = text + 0; unit = text; sub(/^[0-9.]+/, "", unit)
      if (unit == "us") return value / 1000
      if (unit == "ms") return value
      if (unit == "s") return value * 1000
      if (unit == "m") return value * 60000
      return -1
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    $2 == "requests" && $3 == "in" { requests = $1 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i + 0 }
    $1 == "count:" && $2 == "expected_non_2xx" { errors -= $3 }
    END { printf "%s %s %s %d %d\n", rps, p50, p99, errors, requests }
  '
}

comma_list() { local IFS=,; echo "$*"; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

# Per target: its URL, extra wrk arguments (e.g. "-s script.lua"), extra curl arguments for the
# check that it answers 200 (e.g. a write's method and body; a GET unless given), the process
# whose CPU time is its cost (optional), and the rounds' numbers as space-separated lists (split
# on purpose where used). counted["TARGET NAME"]: the sum over the rounds of the "count: NAME N"
# lines that the target's wrk Lua script printed from done().
declare -A url=() wrk_extra=() curl_extra=() cost_pid=() rps=() p50=() p99=() errors=() cpu_us=()
declare -A counted=()

# User + system CPU time of PID (all its threads) in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLOCK_TICKS_PER_SECOND=$(getconf CLK_TCK)
readonly CLOCK_TICKS_PER_SECOND

# Warms each TARGET up for WARMUP after checking it answers 200 (to a GET, or to its curl_extra).
warm_up() {
  local target status
  for target in "$@"; do
    # shellcheck disable=SC2086 # extra arguments split on purpose
    status=$(curl -s -o /dev/null -w '%{http_code}' ${curl_extra[$target]:-} "${url[$target]}")
    if [[ "$status" != 200 ]]; then
      echo "$(basename "$0"): curl ${curl_extra[$target]:-}${curl_extra[$target]:+ }${url[$target]} answered $status, not 200" >&2
      return 1
    fi
    # shellcheck disable=SC2086 # extra arguments split on purpose
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" ${wrk_extra[$target]:-} "${url[$target]}" >/dev/null
  done
}

# ROUNDS rounds of DURATION each over the TARGETs, alternating; fills rps, p50, p99, errors,
# cpu_us and counted.
run_rounds() {
  local round target r a b e n before after name count
  for round in $(seq 1 "$ROUNDS"); do
    for target in "$@"; do
      echo "$(basename "$0"): round $round/$ROUNDS, $target" >&2
      before=${cost_pid[$target]:+$(cpu_ticks "${cost_pid[$target]}")}
      # shellcheck disable=SC2086 # extra arguments split on purpose
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency ${wrk_extra[$target]:-} \
        "${url[$target]}" >"$work/wrk.out"
      after=${cost_pid[$target]:+$(cpu_ticks "${cost_pid[$target]}")}
      read -r r a b e n < <(parse_wrk <"$work/wrk.out")
      # The proxy's own CPU time per request: what it costs, whatever the scheduler did.
      if [[ -n "$before" ]] && (( n > 0 )); then
        cpu_us[$target]+="$(awk -v t=$(( after - before )) -v hz="$CLOCK_TICKS_PER_SECOND" -v n="$n" \
          'BEGIN { printf "%.2f", t * 1e6 / hz / n }') "
      fi
      rps[$target]+="$r "
      p50[$target]+="$a "
      p99[$target]+="$b "
      errors[$target]=$(( ${errors[$target]:-0} + e ))
      while read -r name count; do
        counted["$target $name"]=$(( ${counted["$target $name"]:-0} + count ))
      done < <(awk '$1 == "count:" { print $2, $3 }' "$work/wrk.out")
    done
  done
}

# One target's JSON object (no trailing comma or newline): medians, errors, every round, and
# EXTRA (more "key": value pairs, starting with a comma) if given.
#   result_json TARGET [EXTRA]
result_json() {
  local target=$1
  # shellcheck disable=SC2086 # the lists are split into arguments on purpose
  printf '    {"target": "%s", "median_requests_per_second": %s, "median_p50_ms": %s, "median_p99_ms": %s%s,\n' \
    "$target" "$(median ${rps[$target]})" "$(median ${p50[$target]})" "$(median ${p99[$target]})" "${2:-}"
  # shellcheck disable=SC2086
  printf '     "errors": %s, "rounds_requests_per_second": [%s], "rounds_p50_ms": [%s], "rounds_p99_ms": [%s]' \
    "${errors[$target]}" "$(comma_list ${rps[$target]})" "$(comma_list ${p50[$target]})" \
    "$(comma_list ${p99[$target]})"
  if [[ -n "${cpu_us[$target]:-}" ]]; then
    # shellcheck disable=SC2086
    printf ',\n     "median_cpu_us_per_request": %s, "rounds_cpu_us_per_request": [%s]' \
      "$(median ${cpu_us[$target]})" "$(comma_list ${cpu_us[$target]})"
  fi
  printf '}'
}
