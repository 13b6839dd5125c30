#!/usr/bin/env bash
# Real local Ray head on 127.0.0.1 for runspec's tests.
#
#   tests/services/ray.sh start|stop|status|env
#
# State dir: ${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}/ray. The head runs
# under setsid; its session id is recorded in ray.sid and `stop` kills exactly
# that session (plus descendants that left it). Never `ray stop` (kills by name).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
BASE="${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}"
STATE="${BASE}/ray"
PYTHON="${RUNSPEC_PYTHON:-${REPO}/.venv/bin/python}"
GCS_PORT="${RUNSPEC_RAY_PORT:-6379}"
DASH_PORT="${RUNSPEC_RAY_DASHBOARD_PORT:-8265}"
CLIENT_PORT="${RUNSPEC_RAY_CLIENT_PORT:-10001}"
AGENT_PORT="${RUNSPEC_RAY_AGENT_PORT:-52365}"
NUM_CPUS="${RUNSPEC_RAY_NUM_CPUS:-2}"
START_TIMEOUT="${RUNSPEC_RAY_START_TIMEOUT:-60}"
STOP_GRACE="${RUNSPEC_RAY_STOP_GRACE:-5}" # seconds per stage (raylet, others, gcs)
URL="http://127.0.0.1:${DASH_PORT}"
SIDFILE="${STATE}/ray.sid"

# shellcheck disable=SC2034  # used by lib.sh
SERVICE=ray.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="$(dirname "${PYTHON}")"
# Jobs run `python` from the head's PATH: the venv's bin dir goes first.
export PATH="${BIN}:${PATH}"
# Without this Ray binds the eth0 address instead of 127.0.0.1.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# Without this token auth switches on when ~/.ray/auth_token exists.
export RAY_AUTH_MODE=disabled

# --- helpers -----------------------------------------------------------------

readsid() {
  local sid=""
  if [[ -f "${SIDFILE}" ]]; then
    sid="$(tr -dc '0-9' <"${SIDFILE}" || true)"
  fi
  # Never 0/1 (kernel threads / init).
  [[ "${sid}" == 0 || "${sid}" == 1 ]] && sid=""
  # A stale file (head died without `stop`, sid recycled): only trust the sid
  # if a process of that session names our temp dir on its command line.
  if [[ -n "${sid}" ]] && ! sid_is_ours "${sid}"; then
    sid=""
  fi
  printf '%s' "${sid}"
}

sid_is_ours() {
  local tmp p
  tmp="$(cat "${STATE}/temp_dir" 2>/dev/null || true)"
  [[ -n "${tmp}" ]] || return 1
  for p in $(ps -eo pid=,sid= | awk -v sid="$1" '$2 == sid { print $1 }'); do
    if [[ -r "/proc/${p}/cmdline" ]] && tr '\0' ' ' <"/proc/${p}/cmdline" | grep -qF -- "${tmp}/"; then
      return 0
    fi
  done
  return 1
}

# session_pids SID: live (non-zombie) pids whose session id is SID, plus all
# their live descendants (e.g. processes that called setsid themselves).
session_pids() {
  ps -eo pid=,ppid=,sid=,stat= | awk -v sid="$1" '
    $4 !~ /^Z/ { pid[NR] = $1; ppid[NR] = $2; if ($3 == sid) mark[$1] = 1 }
    END {
      do {
        changed = 0
        for (i in pid) if (!(pid[i] in mark) && (ppid[i] in mark)) { mark[pid[i]] = 1; changed = 1 }
      } while (changed)
      for (p in mark) print p
    }'
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; }

is_up() {
  local sid
  sid="$(readsid)"
  [[ -n "${sid}" && -n "$(session_pids "${sid}")" ]] && http_ok "${URL}/api/version"
}

ray_version() {
  "${PYTHON}" -c 'import importlib.metadata as m; print(m.version("ray"))' 2>/dev/null || echo '?'
}


# --- install -----------------------------------------------------------------

ensure_ray() {
  [[ -x "${PYTHON}" ]] || die "python not found: ${PYTHON} (set RUNSPEC_PYTHON)"
  # ray[default] (the dashboard, hence the Jobs API) needs these extras.
  if "${PYTHON}" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("ray", "aiohttp", "aiohttp_cors", "prometheus_client", "opencensus")))' \
    >/dev/null 2>&1 \
    && [[ -x "${BIN}/ray" ]]; then
    return 0
  fi
  local avail
  avail="$("${PYTHON}" -m pip index versions ray 2>/dev/null | head -n 1 || true)"
  [[ -n "${avail}" ]] || die "ray[default] missing in ${PYTHON} and pip sees no 'ray' package"
  say "installing 'ray[default]' into $(dirname "${BIN}") (pip sees: ${avail}; ~30 s)"
  "${PYTHON}" -m pip install -q 'ray[default]' >"${STATE}/pip.log" 2>&1 \
    || { tail -n 20 "${STATE}/pip.log" >&2; die "pip install 'ray[default]' failed (log: ${STATE}/pip.log)"; }
  [[ -x "${BIN}/ray" ]] || die "pip installed ray but ${BIN}/ray is missing"
  say "installed ray $(ray_version)"
}

# Ray puts unix sockets at <temp>/session_<date>_<usec>_<pid>/sockets/<name>
# (longest name: dash_MetricsHead); a unix socket path must fit in 107 bytes.
# Use <state>/tmp if it is short enough, else a short dir derived from the
# state dir. "/session_2026-11-22_18-40-00_123456_1234567/sockets/dash_MetricsHead"
# is 68 bytes, so the temp dir may have at most 39.
pick_temp_dir() {
  local t="${STATE}/tmp"
  if (( ${#t} + 68 > 107 )); then
    local short
    short="/tmp/rsray-$(printf '%s' "${STATE}" | cksum | cut -d' ' -f1)"
    say "temp dir ${t} is too long for Ray's socket paths (${#t} chars); using ${short}" >&2
    t="${short}"
  fi
  printf '%s' "${t}"
}

# --- commands ----------------------------------------------------------------

cmd_start() {
  local t0 tmp i sid
  t0="$(date +%s.%N)"
  mkdir -p "${STATE}"
  if is_up; then
    say "already running (session $(readsid), ${URL})"
    return 0
  fi
  sid="$(readsid)"
  if [[ -n "${sid}" && -n "$(session_pids "${sid}")" ]]; then
    say "a previous head (session ${sid}) is alive but ${URL} does not answer; stopping it"
    cmd_stop
  fi
  ensure_ray
  if http_ok "${URL}/api/version"; then
    die "something we did not start already answers on ${URL}; stop it or set RUNSPEC_RAY_DASHBOARD_PORT"
  fi
  tmp="$(pick_temp_dir)"
  mkdir -p "${tmp}"
  printf '%s\n' "${tmp}" >"${STATE}/temp_dir"
  say "starting Ray head (ray $(ray_version), gcs 127.0.0.1:${GCS_PORT}, dashboard ${URL}, ${NUM_CPUS} CPUs, temp ${tmp})"
  local extra=()
  read -r -a extra <<<"${RUNSPEC_RAY_EXTRA_ARGS:-}"
  rm -f "${SIDFILE}"
  # setsid -w: the ray CLI runs as leader of a new session (it writes its own
  # session id first) and we wait for it; the daemons it spawns stay in that
  # session. All stdio goes to a file so no caller's pipe is held open.
  # shellcheck disable=SC2016
  if ! setsid -w bash -c 'ps -o sid= -p "$$" | tr -d " " >"$1"; shift; exec "$@"' _ "${SIDFILE}" \
    "${BIN}/ray" start --head \
    --node-ip-address=127.0.0.1 \
    --num-cpus="${NUM_CPUS}" \
    --port="${GCS_PORT}" \
    --ray-client-server-port="${CLIENT_PORT}" \
    --dashboard-agent-listen-port="${AGENT_PORT}" \
    --dashboard-host=127.0.0.1 \
    --dashboard-port="${DASH_PORT}" \
    --disable-usage-stats \
    --temp-dir="${tmp}" \
    "${extra[@]}" \
    </dev/null >"${STATE}/ray-start.log" 2>&1; then
    tail -n 25 "${STATE}/ray-start.log" >&2
    [[ -f "${SIDFILE}" ]] && cmd_stop >&2
    die "'ray start' failed (log: ${STATE}/ray-start.log)"
  fi
  sid="$(readsid)"
  [[ -n "${sid}" ]] || die "could not record the head's session id"
  say "ray start returned ($(elapsed "${t0}"))"
  say "waiting for ${URL}/api/version (timeout ${START_TIMEOUT}s)"
  for ((i = 0; i < START_TIMEOUT * 5; i++)); do
    http_ok "${URL}/api/version" && http_ok "${URL}/api/jobs/" && break
    if [[ -z "$(session_pids "${sid}")" ]]; then
      tail -n 25 "${STATE}/ray-start.log" >&2
      die "the Ray head exited during start-up (logs: ${STATE}/ray-start.log, ${tmp}/session_latest/logs)"
    fi
    sleep 0.2
  done
  if ! http_ok "${URL}/api/jobs/"; then
    tail -n 25 "${STATE}/ray-start.log" >&2
    die "${URL} did not answer within ${START_TIMEOUT}s (logs: ${tmp}/session_latest/logs)"
  fi
  say "up: session ${sid}, ${URL} ($(elapsed "${t0}"))"
  say "use: eval \"\$($0 env)\""
}

# by_comm COMM PID...: those of the given live pids whose comm is COMM
# (only ever applied to pids of our own session).
by_comm() {
  local comm="$1"
  shift
  ps -eo pid=,stat=,comm= | awk -v want="$*" -v comm="${comm}" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
    ($1 in keep) && $2 !~ /^Z/ && $3 == comm { print $1 }'
}

cmd_stop() {
  local sid t0 tmp
  local -a tracked=() pids=() raylet=() gcs=() rest=()
  t0="$(date +%s.%N)"
  sid="$(readsid)"
  if [[ -z "${sid}" ]]; then
    rm -f "${SIDFILE}"
    say "not running (no live head recorded in ${SIDFILE})"
    return 0
  fi
  mapfile -t tracked < <(session_pids "${sid}")
  if [[ ${#tracked[@]} -eq 0 ]]; then
    rm -f "${SIDFILE}"
    say "not running (session ${sid} has no live processes)"
    return 0
  fi
  say "stopping Ray head session ${sid} (${#tracked[@]} processes)"
  # Same order as `ray stop`: raylet (its workers and agents follow it), then
  # everything else, then gcs_server; SIGKILL what is left.
  mapfile -t raylet < <(by_comm raylet "${tracked[@]}")
  mapfile -t gcs < <(by_comm gcs_server "${tracked[@]}")
  term_wait "${STOP_GRACE}" "${raylet[@]}"
  # Re-scan: a job's entrypoint runs in its own session under
  # ray::JobSupervisor; keep every pid seen so none escapes once reparented.
  mapfile -t pids < <(session_pids "${sid}")
  mapfile -t tracked < <(printf '%s\n' "${tracked[@]}" "${pids[@]}" | sed '/^$/d' | sort -un)
  mapfile -t rest < <(live "${tracked[@]}" | grep -vxF -e "${gcs[0]:-x}" -e "${raylet[0]:-x}" || true)
  term_wait "${STOP_GRACE}" "${rest[@]}"
  term_wait "${STOP_GRACE}" "${gcs[@]}"
  mapfile -t pids < <(session_pids "${sid}")
  kill_or_die "processes of session ${sid}" "${tracked[@]}" "${pids[@]}"
  rm -f "${SIDFILE}"
  tmp="$(cat "${STATE}/temp_dir" 2>/dev/null || true)"
  [[ -n "${tmp}" ]] && rm -f "${tmp}/ray_current_cluster"
  say "stopped ($(elapsed "${t0}"))"
}

cmd_status() {
  if is_up; then
    say "running: session $(readsid), ${URL}, version $(curl -fsS --max-time 2 "${URL}/api/version" 2>/dev/null || echo '?')"
    return 0
  fi
  local sid
  sid="$(readsid)"
  if [[ -n "${sid}" && -n "$(session_pids "${sid}")" ]]; then
    say "not healthy: session ${sid} alive but ${URL}/api/version does not answer"
  else
    say "not running (state dir ${STATE})"
  fi
  return 1
}

cmd_env() {
  printf 'export RUNSPEC_RAY_ADDRESS=%q\n' "${URL}"
  printf 'export RUNSPEC_RAY_GCS_ADDRESS=%q\n' "127.0.0.1:${GCS_PORT}"
  printf 'export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0\n'
  printf 'export RAY_AUTH_MODE=disabled\n'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
