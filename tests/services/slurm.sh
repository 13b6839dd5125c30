#!/usr/bin/env bash
# Real single-node Slurm (Debian slurm-wlm) on 127.0.0.1 for runspec's tests.
#
#   tests/services/slurm.sh start|stop|status|env
#
# State dir: ${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}/slurm; the config,
# state, spool, pid, log and jobcomp files all live there. /etc/slurm is never
# touched: clients use the config through SLURM_CONF (see `slurm.sh env`).
# `stop` stops only what `start` started (by pid files in the state dir).
set -euo pipefail

BASE="${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}"
STATE="${BASE}/slurm"
CONF="${STATE}/slurm.conf"
LOGDIR="${STATE}/log"
CTLD_PORT="${RUNSPEC_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${RUNSPEC_SLURMD_PORT:-6818}"
START_TIMEOUT="${RUNSPEC_SLURM_START_TIMEOUT:-30}"
FRESH="${RUNSPEC_SLURM_FRESH:-0}" # 1: slurmctld -c (drop saved jobs; job ids restart at 1)
PACKAGES=(slurmctld slurmd slurm-client munge)
MUNGE_TAG="runspec-$(printf '%s' "${STATE}" | cksum | cut -d' ' -f1)"
MUNGE_PID="/run/munge/${MUNGE_TAG}.pid"
MUNGE_LOG="/var/log/munge/${MUNGE_TAG}.log"

# shellcheck disable=SC2034  # used by lib.sh
SERVICE=slurm.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- process helpers ---------------------------------------------------------

# ours PID [TAG]: the process's command line contains TAG (default: our state
# dir; slurmctld/slurmd get `-f <state>/slurm.conf`, munged its pid file
# named MUNGE_TAG), so a recycled pid is never mistaken for ours.
ours() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "${2:-${STATE}/}"
}

pidfile_alive() { # pidfile_alive FILE [TAG]
  local pid
  pid="$(readpid "$1")"
  alive "${pid}" && ours "${pid}" "${2:-}"
}

# kill_wait NAME PIDFILE [TAG]: SIGTERM, wait up to 10 s, then SIGKILL; remove file.
kill_wait() {
  local name="$1" file="$2" tag="${3:-}" pid i
  pid="$(readpid "${file}")"
  if [[ -z "${pid}" ]]; then
    rm -f "${file}"
    return 0
  fi
  if alive "${pid}" && ours "${pid}" "${tag}"; then
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "${pid}" || break
      sleep 0.1
    done
    if alive "${pid}"; then
      say "${name} (pid ${pid}) ignored SIGTERM for 10 s, sending SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        alive "${pid}" || break
        sleep 0.1
      done
    fi
    alive "${pid}" && die "${name} (pid ${pid}) did not exit"
    say "stopped ${name} (pid ${pid})"
  fi
  rm -f "${file}"
}

# sid_pids SID: live pids whose session id is SID.
sid_pids() {
  ps -eo pid=,sid=,stat= | awk -v sid="$1" '$2 == sid && $3 !~ /^Z/ { print $1 }'
}

# stepd_sids: session ids of processes that hold our slurmd.log open (the
# slurmstepd processes of our slurmd; slurmd itself is stopped by then).
stepd_sids() {
  local fd pid target="${LOGDIR}/slurmd.log"
  for fd in /proc/[0-9]*/fd/*; do
    [[ "$(readlink "${fd}" 2>/dev/null || true)" == "${target}" ]] || continue
    pid="${fd#/proc/}"
    pid="${pid%%/*}"
    [[ "${pid}" == "$$" ]] && continue
    ps -o sid= -p "${pid}" 2>/dev/null | tr -d ' ' || true
  done | sort -u | grep -Evx '0|1|' || true
}

export_conf() { export SLURM_CONF="${CONF}"; }

# --- install -----------------------------------------------------------------

ensure_installed() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${p}")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ "$(id -u)" -eq 0 ]] || die "packages missing (${missing[*]}) and not root: install them first"
  say "installing ${missing[*]} (apt-get, --no-install-recommends)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >"${STATE}/apt.log" 2>&1; then
    say "apt-get install failed; running apt-get update and retrying"
    apt-get update >>"${STATE}/apt.log" 2>&1 || { tail -n 20 "${STATE}/apt.log" >&2; die "apt-get update failed (log: ${STATE}/apt.log)"; }
    apt-get install -y --no-install-recommends "${missing[@]}" >>"${STATE}/apt.log" 2>&1 \
      || { tail -n 20 "${STATE}/apt.log" >&2; die "apt-get install failed (log: ${STATE}/apt.log)"; }
  fi
}

# --- munge -------------------------------------------------------------------

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
  local i
  if munge_ok; then
    if pidfile_alive "${STATE}/munged.pid" "${MUNGE_TAG}"; then
      say "munged already running (pid $(readpid "${STATE}/munged.pid"), started by us)"
    else
      say "munge already works (munged not started by us; reusing it)"
    fi
    return 0
  fi
  # A munged we did not start that does not work: do not touch it.
  local other
  other="$(readpid /run/munge/munged.pid)"
  if [[ -S /run/munge/munge.socket.2 ]] && alive "${other}"; then
    die "a munged (pid ${other}) we did not start is running but 'munge -n | unmunge' fails; fix or stop it first"
  fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating munge key /etc/munge/munge.key"
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  # munged runs as user munge and checks its pid/log paths, which must be
  # reachable by munge (the state dir may not be, e.g. under pytest's
  # 0700 tmp dirs): use munge's own dirs, named after our state dir.
  say "starting munged (as user munge; log ${MUNGE_LOG})"
  rm -f "${MUNGE_PID}"
  runuser -u munge -- munged --pid-file="${MUNGE_PID}" --log-file="${MUNGE_LOG}" \
    </dev/null >"${LOGDIR}/munged.out" 2>&1 \
    || { cat "${LOGDIR}/munged.out" >&2; die "munged failed to start"; }
  for ((i = 0; i < 50; i++)); do
    [[ -s "${MUNGE_PID}" ]] && munge_ok && break
    sleep 0.1
  done
  munge_ok || { tail -n 20 "${MUNGE_LOG}" >&2 2>/dev/null || true; die "munged started but 'munge -n | unmunge' fails"; }
  cp "${MUNGE_PID}" "${STATE}/munged.pid"
  say "munged up (pid $(readpid "${STATE}/munged.pid"))"
}

# --- config ------------------------------------------------------------------

# slurmstepd creates unix sockets <spool>/<node>_<jobid>.<stepid> (stepid up
# to 10 digits); a socket path must fit in 107 bytes. Use <state>/spool if it
# is short enough (with room for 8-digit job ids), else a short dir derived
# from the state dir.
pick_spool_dir() {
  local nodename="$1" d="${STATE}/spool"
  if (( ${#d} + 1 + ${#nodename} + 1 + 8 + 1 + 10 > 107 )); then
    local short
    short="/tmp/rsslurm-$(printf '%s' "${STATE}" | cksum | cut -d' ' -f1)/spool"
    say "spool dir ${d} is too long for slurmstepd's socket paths (${#d} chars); using ${short}" >&2
    d="${short}"
  fi
  printf '%s' "${d}"
}

write_conf() {
  local host node nodename spool
  host="$(hostname -s)"
  node="$(slurmd -C 2>/dev/null | head -n 1)"
  [[ "${node}" == NodeName=* ]] || die "'slurmd -C' did not print a NodeName line: ${node}"
  nodename="${node#NodeName=}"
  nodename="${nodename%% *}"
  spool="$(pick_spool_dir "${nodename}")"
  mkdir -p "${STATE}/ctld" "${spool}" "${LOGDIR}"
  cat >"${CONF}.tmp" <<EOF
# Written by tests/services/slurm.sh; do not edit (rewritten on each start).
ClusterName=runspec
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${STATE}/jobcomp.txt
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${spool}
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${LOGDIR}/slurmctld.log
SlurmdLogFile=${LOGDIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
${node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv -f "${CONF}.tmp" "${CONF}"
}

# --- status ------------------------------------------------------------------

node_state() { SLURM_CONF="${CONF}" sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true; }

is_up() {
  pidfile_alive "${STATE}/slurmctld.pid" && pidfile_alive "${STATE}/slurmd.pid" \
    && SLURM_CONF="${CONF}" scontrol ping >/dev/null 2>&1
}

log_tails() {
  local f
  for f in "${LOGDIR}/slurmctld.log" "${LOGDIR}/slurmd.log"; do
    if [[ -f "${f}" ]]; then
      printf -- '--- tail %s\n' "${f}" >&2
      tail -n 15 "${f}" >&2
    fi
  done
}

# --- commands ----------------------------------------------------------------

wait_pidfile() { # wait_pidfile NAME FILE: the daemon writes FILE after forking
  local i
  for ((i = 0; i < 50; i++)); do
    pidfile_alive "$2" && return 0
    sleep 0.1
  done
  log_tails
  die "$1 did not write a live pid to $2 within 5 s"
}

cmd_start() {
  local t0 i st
  t0="$(date +%s.%N)"
  mkdir -p "${STATE}"
  ensure_installed
  if is_up; then
    say "already running (slurmctld pid $(readpid "${STATE}/slurmctld.pid"), slurmd pid $(readpid "${STATE}/slurmd.pid")); node: $(node_state)"
    return 0
  fi
  mkdir -p "${LOGDIR}"
  ensure_munge
  export_conf
  if ! pidfile_alive "${STATE}/slurmctld.pid" && ! pidfile_alive "${STATE}/slurmd.pid"; then
    write_conf
  fi
  if ! pidfile_alive "${STATE}/slurmctld.pid"; then
    say "starting slurmctld (port ${CTLD_PORT})"
    rm -f "${STATE}/slurmctld.pid"
    local clear=()
    if [[ "${FRESH}" == 1 ]]; then
      clear=(-c)
      say "RUNSPEC_SLURM_FRESH=1: clearing saved job state"
    fi
    slurmctld "${clear[@]}" -f "${CONF}" </dev/null >"${LOGDIR}/slurmctld.out" 2>&1 \
      || { cat "${LOGDIR}/slurmctld.out" >&2; log_tails; die "slurmctld failed to start"; }
    wait_pidfile slurmctld "${STATE}/slurmctld.pid"
  fi
  if ! pidfile_alive "${STATE}/slurmd.pid"; then
    say "starting slurmd (port ${SLURMD_PORT})"
    rm -f "${STATE}/slurmd.pid"
    slurmd -f "${CONF}" </dev/null >"${LOGDIR}/slurmd.out" 2>&1 \
      || { cat "${LOGDIR}/slurmd.out" >&2; log_tails; die "slurmd failed to start"; }
    wait_pidfile slurmd "${STATE}/slurmd.pid"
  fi
  say "waiting for node to be idle (timeout ${START_TIMEOUT}s)"
  for ((i = 0; i < START_TIMEOUT * 5; i++)); do
    st="$(node_state)"
    [[ "${st}" == idle* ]] && break
    if ! pidfile_alive "${STATE}/slurmctld.pid" || ! pidfile_alive "${STATE}/slurmd.pid"; then
      log_tails
      die "a Slurm daemon exited during start-up (logs under ${LOGDIR})"
    fi
    sleep 0.2
  done
  if [[ "${st}" != idle* ]]; then
    log_tails
    die "node not idle after ${START_TIMEOUT}s (state: '${st:-none}'; logs under ${LOGDIR})"
  fi
  say "up: $(SLURM_CONF="${CONF}" sinfo -h -o '%P %a %D %T %N' | head -n 1) ($(awk -v t0="${t0}" -v t1="$(date +%s.%N)" 'BEGIN{printf "%.1f s", t1 - t0}'))"
  say "use: eval \"\$($0 env)\""
}

cmd_stop() {
  local sid pids ids i
  local any=0
  if pidfile_alive "${STATE}/slurmctld.pid" && pidfile_alive "${STATE}/slurmd.pid"; then
    # Cancel jobs first so that their slurmstepd/tasks end cleanly.
    ids="$(SLURM_CONF="${CONF}" squeue -h -o '%A' 2>/dev/null || true)"
    if [[ -n "${ids}" ]]; then
      say "cancelling $(wc -w <<<"${ids}") job(s)"
      # shellcheck disable=SC2086
      SLURM_CONF="${CONF}" scancel ${ids} 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [[ -z "$(SLURM_CONF="${CONF}" squeue -h -t R,CG -o '%A' 2>/dev/null || true)" ]] && break
        sleep 0.2
      done
    fi
  fi
  for f in slurmd slurmctld; do
    [[ -f "${STATE}/${f}.pid" ]] && any=1
    kill_wait "${f}" "${STATE}/${f}.pid"
  done
  # Leftover job steps (e.g. the daemons died before `stop`): each slurmstepd
  # of our slurmd keeps our slurmd.log open and leads its own session, which
  # holds the job's tasks. Kill those sessions.
  for sid in $(stepd_sids); do
    pids="$(sid_pids "${sid}")"
    if [[ -n "${pids}" ]]; then
      say "killing leftover job step session ${sid}: $(tr '\n' ' ' <<<"${pids}")"
      # shellcheck disable=SC2086
      kill -KILL ${pids} 2>/dev/null || true
    fi
  done
  if [[ -f "${STATE}/munged.pid" ]]; then
    any=1
    kill_wait munged "${STATE}/munged.pid" "${MUNGE_TAG}"
    rm -f "${MUNGE_PID}"
  fi
  if [[ "${any}" -eq 0 ]]; then
    say "not running (no pid files in ${STATE})"
  else
    say "stopped"
  fi
}

cmd_status() {
  export_conf
  if is_up; then
    say "running: slurmctld pid $(readpid "${STATE}/slurmctld.pid"), slurmd pid $(readpid "${STATE}/slurmd.pid"), node $(node_state), SLURM_CONF=${CONF}"
    return 0
  fi
  local what=()
  pidfile_alive "${STATE}/slurmctld.pid" && what+=("slurmctld up") || what+=("slurmctld down")
  pidfile_alive "${STATE}/slurmd.pid" && what+=("slurmd up") || what+=("slurmd down")
  say "not running (${what[*]}; state dir ${STATE})"
  return 1
}

cmd_env() {
  printf 'export SLURM_CONF=%q\n' "${CONF}"
  printf 'export RUNSPEC_SLURM_JOBCOMP=%q\n' "${STATE}/jobcomp.txt"
  printf 'export RUNSPEC_SLURM_PARTITION=debug\n'
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
