# Shared by the bench scripts (sourced, not run): a scratch directory, children stopped on
# exit, and waiting for a server's "listening on HOST:PORT" line.
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

# Waits (at most 10 s) for a line matching PATTERN in FILE from process PID; prints its port.
listening_port() {
  local file=$1 pattern=$2 pid=$3 line
  for _ in $(seq 1 100); do
    line=$(grep -m1 -E "$pattern" "$file" || true)
    if [[ -n "$line" ]]; then
      echo "${line##*:}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$(basename "$0"): server did not start; its output:" >&2
  cat "$file" >&2
  return 1
}
