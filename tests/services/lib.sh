# shellcheck shell=bash
# Helpers the service scripts share (sourced, not run): messages, and finding and
# stopping processes by pid without ever matching by name.
#
# The sourcing script sets SERVICE (its name, for messages) first.

say() { printf '%s: %s\n' "${SERVICE}" "$*"; }
die() { printf '%s: ERROR: %s\n' "${SERVICE}" "$*" >&2; exit 1; }

# alive PID: true if PID exists and is not a zombie.
alive() {
  local stat
  [[ -n "${1:-}" ]] || return 1
  stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [[ -n "${stat}" && "${stat}" != Z* ]]
}

readpid() { # readpid FILE -> prints pid or nothing
  local pid=""
  if [[ -f "$1" ]]; then
    pid="$(tr -dc '0-9' <"$1" || true)"
  fi
  printf '%s' "${pid}"
}

# live PID...: the given pids that exist and are not zombies (one ps call).
live() {
  ps -eo pid=,stat= | awk -v want="$*" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
    ($1 in keep) && $2 !~ /^Z/ { print $1 }'
}

# term_wait SECONDS PID...: SIGTERM the pids, wait until they are gone or the
# time is up. Prints nothing; the caller re-checks with `live`.
term_wait() {
  local secs="$1" i
  shift
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    [[ -z "$(live "$@")" ]] && return 0
    sleep 0.1
  done
}

# kill_or_die WHAT PID...: SIGKILL those of the pids still alive, wait up to 5 s for
# them to go, and die naming WHAT if any survive.
kill_or_die() {
  local what="$1" i
  shift
  local -a pids=()
  mapfile -t pids < <(live "$@")
  [[ ${#pids[@]} -gt 0 ]] || return 0
  say "sending SIGKILL to ${#pids[@]} processes still alive: ${pids[*]}"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    mapfile -t pids < <(live "${pids[@]}")
    [[ ${#pids[@]} -eq 0 ]] && return 0
    sleep 0.1
  done
  die "${what} survived SIGKILL: ${pids[*]}"
}

elapsed() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f s", t1 - t0 }'; }
