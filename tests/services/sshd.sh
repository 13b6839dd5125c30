#!/usr/bin/env bash
# Real OpenSSH server on 127.0.0.1 (a "login node") for runspec's tests.
#
#   tests/services/sshd.sh start|stop|status|env
#
# State dir: ${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}/sshd; the config,
# host key, client key, known_hosts, pid and log files all live there. The
# system's /etc/ssh/sshd_config and its ssh service are never touched: our own
# /usr/sbin/sshd runs with `-f <state>/sshd_config`. Logins: only the
# unprivileged "cluster account" runspec-cluster (created if absent), only
# with the client key in the state dir. `stop` stops only what `start`
# started (the daemon in <state>/sshd.pid and its connections).
set -euo pipefail

BASE="${RUNSPEC_SERVICES_DIR:-/tmp/runspec-services}"
STATE="${BASE}/sshd"
CONF="${STATE}/sshd_config"
LOGDIR="${STATE}/log"
LOG="${LOGDIR}/sshd.log"
PIDFILE="${STATE}/sshd.pid"
PORTFILE="${STATE}/port"
HOSTKEY="${STATE}/ssh_host_ed25519_key"
CLIENTKEY="${STATE}/id_ed25519"
KNOWN="${STATE}/known_hosts"
HOST=127.0.0.1
CLUSTER_USER=runspec-cluster
START_TIMEOUT="${RUNSPEC_SSHD_START_TIMEOUT:-20}"
# The cluster user's Slurm client config: the one tests/services/slurm.sh
# writes (same services dir). Set for every session by sshd itself (SetEnv).
SLURM_CONF_PATH="${BASE}/slurm/slurm.conf"
# python-is-python3: jobs and the login node run `python` (runspec's wrapper, the
# recipes); rsync: NeMo-Run's SSHTunnel copies its packages with it.
PACKAGES=(openssh-server openssh-client python-is-python3 rsync)
SSHD=/usr/sbin/sshd

# shellcheck disable=SC2034  # used by lib.sh
SERVICE=sshd.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- process helpers ---------------------------------------------------------

# ours PID: the process's command line names our config file (the listener
# keeps `-f <state>/sshd_config` in its title), so a recycled pid is never
# mistaken for ours.
ours() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "${CONF}"
}

daemon_alive() {
  local pid
  pid="$(readpid "${PIDFILE}")"
  alive "${pid}" && ours "${pid}"
}

# descendants PID: all live descendants of PID (its connections: the
# per-connection sshd processes and the commands they run).
descendants() {
  ps -eo pid=,ppid=,stat= | awk -v root="$1" '
    $3 !~ /^Z/ { pid[NR] = $1; ppid[NR] = $2 }
    END {
      mark[root] = 1
      do {
        changed = 0
        for (i in pid) if (!(pid[i] in mark) && (ppid[i] in mark)) { mark[pid[i]] = 1; changed = 1 }
      } while (changed)
      for (p in mark) if (p != root) print p
    }'
}

# port_busy PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

log_tail() {
  if [[ -f "${LOG}" ]]; then
    printf -- '--- tail %s\n' "${LOG}" >&2
    tail -n 20 "${LOG}" >&2
  fi
}

# ssh_as_user CMD...: one non-interactive login with exactly our key and
# known_hosts (no ~/.ssh/config, no agent), as the client side will do it.
ssh_as_user() {
  ssh -F none -i "${CLIENTKEY}" -p "$(cat "${PORTFILE}")" \
    -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="${KNOWN}" \
    -o ConnectTimeout=3 -o LogLevel=ERROR \
    "${CLUSTER_USER}@${HOST}" "$@" </dev/null
}

login_ok() { [[ -f "${PORTFILE}" ]] && [[ "$(ssh_as_user id -un 2>/dev/null)" == "${CLUSTER_USER}" ]]; }

is_up() { daemon_alive && login_ok; }

# --- install -----------------------------------------------------------------

ensure_installed() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${p}")
    fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    [[ "$(id -u)" -eq 0 ]] || die "packages missing (${missing[*]}) and not root: install them first"
    # Debian's postinst creates /etc/ssh/sshd_config and host keys there (the
    # package's doing; we never read them) and asks invoke-rc.d to start the
    # system service, which policy-rc.d or the lack of an init system blocks.
    say "installing ${missing[*]} (apt-get, --no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >"${STATE}/apt.log" 2>&1; then
      say "apt-get install failed; running apt-get update and retrying"
      apt-get update >>"${STATE}/apt.log" 2>&1 || { tail -n 20 "${STATE}/apt.log" >&2; die "apt-get update failed (log: ${STATE}/apt.log)"; }
      apt-get install -y --no-install-recommends "${missing[@]}" >>"${STATE}/apt.log" 2>&1 \
        || { tail -n 20 "${STATE}/apt.log" >&2; die "apt-get install failed (log: ${STATE}/apt.log)"; }
    fi
  fi
  [[ -x "${SSHD}" ]] || die "${SSHD} missing after installing openssh-server"
  command -v ssh >/dev/null || die "ssh (openssh-client) missing"
  command -v ssh-keygen >/dev/null || die "ssh-keygen (openssh-client) missing"
}

# --- the cluster account -----------------------------------------------------

user_home() { getent passwd "${CLUSTER_USER}" | cut -d: -f6; }

ensure_user() {
  local home shadow
  if ! getent passwd "${CLUSTER_USER}" >/dev/null; then
    say "creating system user ${CLUSTER_USER} (home /home/${CLUSTER_USER}, shell /bin/bash)"
    # Password '*': no password can ever match, but the account is not
    # "locked" ('!'), which sshd refuses even for keys when UsePAM is no.
    useradd --system --user-group --create-home --home-dir "/home/${CLUSTER_USER}" \
      --shell /bin/bash --password '*' --comment 'runspec test cluster account' \
      "${CLUSTER_USER}" || die "useradd ${CLUSTER_USER} failed"
  fi
  home="$(user_home)"
  [[ -n "${home}" && "${home}" == /* ]] || die "user ${CLUSTER_USER} has no usable home directory ('${home}')"
  if [[ ! -d "${home}" ]]; then
    say "creating missing home ${home}"
    mkdir -p "${home}"
    cp -rT /etc/skel "${home}" 2>/dev/null || true
    chown -R "${CLUSTER_USER}:" "${home}"
  fi
  shadow="$(getent shadow "${CLUSTER_USER}" | cut -d: -f2)"
  if [[ "${shadow}" == '!'* ]]; then
    say "user ${CLUSTER_USER} is locked ('!' password; sshd refuses it without PAM); setting password field to '*'"
    usermod --password '*' "${CLUSTER_USER}"
  fi
  [[ "$(getent passwd "${CLUSTER_USER}" | cut -d: -f7)" == /bin/bash ]] \
    || usermod --shell /bin/bash "${CLUSTER_USER}"
  # StrictModes: home, ~/.ssh and authorized_keys owned by the user and not
  # writable by group or others.
  chown "${CLUSTER_USER}:" "${home}"
  chmod 0700 "${home}"
  install -d -m 0700 -o "${CLUSTER_USER}" -g "$(id -gn "${CLUSTER_USER}")" "${home}/.ssh" "${home}/runspec-jobs"
}

# install_authorized_key: our client key, tagged "runspec-sshd:<state dir>".
# The user is shared by every state dir (another RUNSPEC_SERVICES_DIR may run
# its own sshd at the same time), so the keys of other state dirs stay, as
# long as their id_ed25519.pub still exists and matches; lines not tagged
# by us are kept as they are.
install_authorized_key() {
  local home tmp file line dir
  home="$(user_home)"
  file="${home}/.ssh/authorized_keys"
  tmp="${file}.tmp"
  : >"${tmp}"
  if [[ -f "${file}" ]]; then
    while IFS= read -r line || [[ -n "${line}" ]]; do
      if [[ "${line}" =~ ^([^ ]+\ [^ ]+)\ runspec-sshd:(/.*)$ ]]; then
        dir="${BASH_REMATCH[2]}"
        [[ "${dir}" == "${STATE}" ]] && continue
        [[ -f "${dir}/id_ed25519.pub" ]] || continue
        [[ "$(cut -d' ' -f1,2 "${dir}/id_ed25519.pub")" == "${BASH_REMATCH[1]}" ]] || continue
      fi
      printf '%s\n' "${line}" >>"${tmp}"
    done <"${file}"
  fi
  printf '%s runspec-sshd:%s\n' "$(cut -d' ' -f1,2 "${CLIENTKEY}.pub")" "${STATE}" >>"${tmp}"
  chown "${CLUSTER_USER}:" "${tmp}"
  chmod 0600 "${tmp}"
  mv -f "${tmp}" "${home}/.ssh/authorized_keys"
}

# --- keys, port, config --------------------------------------------------------

ensure_keys() {
  if [[ ! -s "${HOSTKEY}" || ! -s "${HOSTKEY}.pub" ]]; then
    say "generating host key ${HOSTKEY}"
    rm -f "${HOSTKEY}" "${HOSTKEY}.pub"
    ssh-keygen -q -t ed25519 -N '' -C "runspec-test-sshd" -f "${HOSTKEY}" || die "ssh-keygen (host key) failed"
  fi
  if [[ ! -s "${CLIENTKEY}" || ! -s "${CLIENTKEY}.pub" ]]; then
    say "generating client key ${CLIENTKEY}"
    rm -f "${CLIENTKEY}" "${CLIENTKEY}.pub"
    ssh-keygen -q -t ed25519 -N '' -C "runspec-test-client" -f "${CLIENTKEY}" || die "ssh-keygen (client key) failed"
  fi
  chown root:root "${HOSTKEY}" "${CLIENTKEY}"
  chmod 0600 "${HOSTKEY}" "${CLIENTKEY}"
  chmod 0644 "${HOSTKEY}.pub" "${CLIENTKEY}.pub"
}

free_port() {
  local p i
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' && return 0
  fi
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 30000))
    port_busy "${p}" || { printf '%s\n' "${p}"; return 0; }
  done
  die "found no free port on ${HOST}"
}

# wanted_port: RUNSPEC_SSHD_PORT as a plain number (empty if unset).
wanted_port() {
  local port="${RUNSPEC_SSHD_PORT:-}"
  [[ -n "${port}" ]] || return 0
  if ! [[ "${port}" =~ ^[0-9]{1,5}$ ]] || (( 10#${port} < 1 || 10#${port} > 65535 )); then
    die "RUNSPEC_SSHD_PORT is not a port: '${port}'"
  fi
  printf '%s\n' "$((10#${port}))"
}

# pick_port: RUNSPEC_SSHD_PORT, else the port of the previous start if it is
# still free, else a fresh free one. Remembered in <state>/port.
pick_port() {
  local port=""
  if [[ -n "${RUNSPEC_SSHD_PORT:-}" ]]; then
    port="$(wanted_port)"
    port_busy "${port}" && die "RUNSPEC_SSHD_PORT=${port}: something we did not start already listens on ${HOST}:${port}"
  else
    port="$(tr -dc '0-9' 2>/dev/null <"${PORTFILE}" || true)"
    if [[ -z "${port}" ]] || port_busy "${port}"; then
      port="$(free_port)"
    fi
  fi
  printf '%s\n' "${port}" >"${PORTFILE}"
}

write_conf() {
  local port
  port="$(cat "${PORTFILE}")"
  cat >"${CONF}.tmp" <<EOF
# Written by tests/services/sshd.sh; do not edit (rewritten on each start).
# Not /etc/ssh/sshd_config: nothing from the system's config is included.
Port ${port}
ListenAddress ${HOST}
AddressFamily inet
HostKey ${HOSTKEY}
PidFile ${PIDFILE}
LogLevel VERBOSE
# Only public keys, only the cluster account.
AuthenticationMethods publickey
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
AllowUsers ${CLUSTER_USER}
StrictModes yes
# PAM's session stack (pam_loginuid, pam_systemd) fails in containers.
UsePAM no
PermitUserEnvironment no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
Subsystem sftp internal-sftp
# The cluster user's Slurm client config (tests/services/slurm.sh), set by
# sshd for every session whatever the shell or command (bash -c, sftp, -l).
SetEnv SLURM_CONF=${SLURM_CONF_PATH}
EOF
  mv -f "${CONF}.tmp" "${CONF}"
  chmod 0644 "${CONF}"
}

write_known_hosts() {
  local port entry
  port="$(cat "${PORTFILE}")"
  if [[ "${port}" == 22 ]]; then entry="${HOST}"; else entry="[${HOST}]:${port}"; fi
  printf '%s %s\n' "${entry}" "$(cut -d' ' -f1,2 "${HOSTKEY}.pub")" >"${KNOWN}.tmp"
  chmod 0644 "${KNOWN}.tmp"
  mv -f "${KNOWN}.tmp" "${KNOWN}"
}

# check_slurm_access: best effort; Slurm may not be started (yet).
check_slurm_access() {
  if [[ -f "${SLURM_CONF_PATH}" ]] && ! runuser -u "${CLUSTER_USER}" -- test -r "${SLURM_CONF_PATH}"; then
    say "WARNING: ${CLUSTER_USER} cannot read ${SLURM_CONF_PATH} (a parent dir of ${BASE} is not world-searchable?): Slurm commands over ssh will fail"
  fi
}

# --- commands ----------------------------------------------------------------

cmd_start() {
  local t0 i port want
  t0="$(date +%s.%N)"
  [[ "$(id -u)" -eq 0 ]] || die "must run as root (creates a user, runs sshd)"
  want="$(wanted_port)"
  mkdir -p "${STATE}" "${LOGDIR}"
  ensure_installed
  if is_up; then
    if [[ -n "${want}" && "${want}" != "$(cat "${PORTFILE}")" ]]; then
      port_busy "${want}" && die "RUNSPEC_SSHD_PORT=${want}: something we did not start already listens on ${HOST}:${want} (ours runs on $(cat "${PORTFILE}"))"
      say "running on port $(cat "${PORTFILE}") but RUNSPEC_SSHD_PORT=${want}; restarting"
      cmd_stop
    else
      say "already running (pid $(readpid "${PIDFILE}"), ${CLUSTER_USER}@${HOST}:$(cat "${PORTFILE}"))"
      return 0
    fi
  fi
  if daemon_alive; then
    say "a previous sshd (pid $(readpid "${PIDFILE}")) is alive but a login fails; stopping it"
    cmd_stop
  fi
  ensure_user
  ensure_keys
  install_authorized_key
  pick_port
  port="$(cat "${PORTFILE}")"
  write_conf
  write_known_hosts
  # Debian's sshd needs its privilege separation dir (normally made by the
  # service unit / init script).
  [[ -d /run/sshd ]] || install -d -m 0755 -o root -g root /run/sshd
  "${SSHD}" -t -f "${CONF}" >"${LOGDIR}/sshd-t.out" 2>&1 \
    || { cat "${LOGDIR}/sshd-t.out" >&2; die "sshd -t rejected ${CONF}"; }
  say "starting sshd on ${HOST}:${port} (config ${CONF}, log ${LOG})"
  rm -f "${PIDFILE}"
  # Without -D sshd forks into the background (its own session, stdio on
  # /dev/null) and writes PidFile; -E sends its log to our file.
  "${SSHD}" -f "${CONF}" -E "${LOG}" </dev/null >"${LOGDIR}/sshd.out" 2>&1 \
    || { cat "${LOGDIR}/sshd.out" >&2; log_tail; die "sshd failed to start"; }
  for ((i = 0; i < 50; i++)); do
    daemon_alive && break
    sleep 0.1
  done
  daemon_alive || { log_tail; die "sshd did not write a live pid to ${PIDFILE} within 5 s"; }
  say "waiting for a login as ${CLUSTER_USER} (timeout ${START_TIMEOUT}s)"
  local deadline=$((SECONDS + START_TIMEOUT)) out=""
  while ((SECONDS < deadline)); do
    out="$(ssh_as_user id -un 2>&1 || true)"
    [[ "${out}" == "${CLUSTER_USER}" ]] && break
    daemon_alive || { log_tail; die "sshd exited during start-up (log: ${LOG})"; }
    sleep 0.2
  done
  if [[ "${out}" != "${CLUSTER_USER}" ]]; then
    printf -- '--- last ssh attempt: %s\n' "${out}" >&2
    log_tail
    die "no ssh login as ${CLUSTER_USER}@${HOST}:${port} within ${START_TIMEOUT}s (log: ${LOG})"
  fi
  check_slurm_access
  say "up: pid $(readpid "${PIDFILE}"), ${CLUSTER_USER}@${HOST}:${port} ($(elapsed "${t0}"))"
  say "use: eval \"\$($0 env)\""
}

cmd_stop() {
  local pid
  local -a pids=()
  pid="$(readpid "${PIDFILE}")"
  if [[ -z "${pid}" ]] || ! alive "${pid}" || ! ours "${pid}"; then
    rm -f "${PIDFILE}"
    say "not running (no live sshd recorded in ${PIDFILE})"
    return 0
  fi
  # The listener first (no new connections), then its open connections.
  mapfile -t pids < <(descendants "${pid}")
  term_wait 5 "${pid}" "${pids[@]}"
  kill_or_die "sshd processes" "${pid}" "${pids[@]}"
  rm -f "${PIDFILE}"
  say "stopped sshd (pid ${pid})"
}

cmd_status() {
  if is_up; then
    say "running: pid $(readpid "${PIDFILE}"), ${CLUSTER_USER}@${HOST}:$(cat "${PORTFILE}"), config ${CONF}"
    return 0
  fi
  if daemon_alive; then
    say "not healthy: sshd pid $(readpid "${PIDFILE}") alive but a login as ${CLUSTER_USER} fails (log: ${LOG})"
  else
    say "not running (state dir ${STATE})"
  fi
  return 1
}

cmd_env() {
  local port home
  port="$(tr -dc '0-9' 2>/dev/null <"${PORTFILE}" || true)"
  [[ -n "${port}" ]] || die "no port recorded in ${PORTFILE}: run '$0 start' first"
  home="$(user_home)"
  [[ -n "${home}" ]] || die "user ${CLUSTER_USER} does not exist: run '$0 start' first"
  printf 'export RUNSPEC_SSH_HOST=%q\n' "${HOST}"
  printf 'export RUNSPEC_SSH_PORT=%q\n' "${port}"
  printf 'export RUNSPEC_SSH_USER=%q\n' "${CLUSTER_USER}"
  printf 'export RUNSPEC_SSH_IDENTITY=%q\n' "${CLIENTKEY}"
  printf 'export RUNSPEC_SSH_KNOWN_HOSTS=%q\n' "${KNOWN}"
  printf 'export RUNSPEC_SSH_REMOTE_DIR=%q\n' "${home}/runspec-jobs"
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
