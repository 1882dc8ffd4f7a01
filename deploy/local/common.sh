#!/usr/bin/env bash
# Shared helpers for deploy/local/*.sh. Source it, don't execute it.
#
# Everything these scripts create (data, sockets, pid files, logs) lives under
# FINTECH_LOCAL_DIR, outside the git repo, so `rm -rf "$FINTECH_LOCAL_DIR"`
# is a complete reset.

# Guard against double sourcing (services.sh and the service scripts share it).
if [[ -n "${_FINTECH_COMMON_SOURCED:-}" ]]; then
    return 0
fi
_FINTECH_COMMON_SOURCED=1

# CI runs us as root without a TTY: apt/dpkg must never prompt.
export DEBIAN_FRONTEND=noninteractive

FINTECH_LOCAL_DIR="${FINTECH_LOCAL_DIR:-/var/tmp/fintech-local}"
# Make the path absolute so behaviour does not depend on the caller's cwd
# (several commands below run after `cd /`).
if [[ "$FINTECH_LOCAL_DIR" != /* ]]; then
    FINTECH_LOCAL_DIR="$(pwd -P)/$FINTECH_LOCAL_DIR"
fi
export FINTECH_LOCAL_DIR

# Directory holding the service scripts (this file's directory).
FINTECH_LOCAL_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
export FINTECH_LOCAL_SCRIPTS

# All diagnostics go to stderr: stdout is reserved for `env` output so that
# `eval "$(deploy/local/services.sh up)"` only ever sees export lines.
log() {
    printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${LOG_TAG:-local}" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

is_root() {
    [[ "$(id -u)" -eq 0 ]]
}

# Create the state dir world-traversable (0755): service users such as
# `postgres` must be able to reach their own subdirectories.
ensure_state_dir() {
    if [[ ! -d "$FINTECH_LOCAL_DIR" ]]; then
        mkdir -p "$FINTECH_LOCAL_DIR"
        chmod 0755 "$FINTECH_LOCAL_DIR"
    fi
}

# Serialise concurrent invocations for one service (e.g. two CI jobs or two
# developers' shells running `up` at once). The lock is released when the
# calling process exits. Uses fd 9.
take_lock() {
    local name=$1
    ensure_state_dir
    exec 9>"$FINTECH_LOCAL_DIR/.lock-$name"
    if ! flock -w 300 9; then
        die "timed out waiting for lock $FINTECH_LOCAL_DIR/.lock-$name"
    fi
}

_pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]]
}

_apt_update() {
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 update -q >&2
    touch "$FINTECH_LOCAL_DIR/.apt-updated"
}

# ensure_apt_packages pkg... : install missing Debian packages.
# apt-get update runs only when something is actually missing, and at most
# once per hour across all service scripts (stamp file), because each service
# script is a separate process and `services.sh up` would otherwise update
# once per service. If an install with skipped update fails (stale lists),
# we update and retry once.
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        _pkg_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    is_root || die "packages missing (${missing[*]}) and not root; install them first"
    ensure_state_dir

    local stamp="$FINTECH_LOCAL_DIR/.apt-updated" updated=0
    if [[ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]]; then
        _apt_update
        updated=1
    fi

    # DPkg::Lock::Timeout waits for e.g. unattended-upgrades instead of
    # failing; confdef/confold keep any existing config without prompting.
    # Dpkg::Use-Pty=0 drops the progress-bar noise from CI logs.
    local apt_install=(apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
        install -y -q --no-install-recommends)
    log "installing: ${missing[*]}"
    local t0=$SECONDS
    if ! "${apt_install[@]}" "${missing[@]}" >&2; then
        [[ $updated -eq 0 ]] || die "apt-get install ${missing[*]} failed"
        _apt_update
        "${apt_install[@]}" "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
    fi
    log "installed ${missing[*]} in $((SECONDS - t0))s"
}

# pid_alive pid : process exists and is not a zombie. Daemons are reparented
# to PID 1, and in some containers PID 1 reaps them only after a while; a
# zombie has already released its ports and files, so it counts as gone.
pid_alive() {
    local state=""
    kill -0 "$1" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != "Z" ]]
}

# stop_process pid timeout_seconds: SIGTERM, wait, then SIGKILL to the process group (our
# servers are started with setsid, so that reaches a launcher script and its JVM) or the pid.
stop_process() {
    local pid=$1 timeout_s=$2
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_s))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "did not exit after ${timeout_s}s; sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                pid_alive "$pid" || break
                sleep 0.2
            done
            return 0
        fi
        sleep 0.2
    done
}

# The major version of a `java` binary (8 for 1.8.0_x, 17 for 17.0.x).
java_major() {
    local v
    v="$("$1" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    v="${v#1.}" # 1.8.0_x -> 8.0_x
    printf '%s' "${v%%[.+-]*}"
}

# port_open host port : true if something listens on that port.
port_open() {
    # A listening socket on the port, as the kernel reports it. Not a test connection: our
    # ports lie in Linux's ephemeral range (32768-60999), and a connection to a port where
    # nothing listens can pick that same port as its source and connect to itself (TCP
    # simultaneous open), which once reported a stopped PostgreSQL's port as taken.
    if command -v ss >/dev/null 2>&1; then
        ss -ltn "sport = :$2" 2>/dev/null | tail -n +2 | grep -q .
        return
    fi
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash, by design
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for_port host port timeout_seconds
wait_for_port() {
    local host=$1 port=$2 timeout_s=${3:-30}
    local deadline=$((SECONDS + timeout_s))
    until port_open "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout_s}s waiting for $host:$port"
            return 1
        fi
        sleep 0.2
    done
}

# check_ports NAME=port... : every port a number, no two the same; NAME is the variable that
# sets it, for the message.
check_ports() {
    local spec name port seen=""
    for spec in "$@"; do
        name=${spec%%=*}
        port=${spec#*=}
        [[ "$port" =~ ^[0-9]+$ ]] || die "invalid port in $name: '$port'"
        [[ " $seen " != *" $port "* ]] || die "$name: port $port is already taken by another of this service's ports"
        seen+=" $port"
    done
}

# require_ports_free host owner port... : stop with an error when another process listens on
# one of the ports (before we start our own `owner` there).
require_ports_free() {
    local host=$1 owner=$2 port
    shift 2
    for port in "$@"; do
        if port_open "$host" "$port"; then
            die "port $host:$port is used by another process (not our $owner)"
        fi
    done
}

# service_main "$@" : the commands every service script answers, each its cmd_<command>
# function: start, stop, status, env (export lines on stdout).
service_main() {
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        *)
            echo "usage: $0 {start|stop|status|env}" >&2
            exit 2
            ;;
    esac
}

# run_as user cmd... : run a command as another OS user (only when we are
# root; otherwise as ourselves). `cd /` so the target user never trips over
# an unreadable cwd such as /root.
run_as() {
    local user=$1
    shift
    if is_root && [[ "$user" != "root" ]]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        (cd / && "$@")
    fi
}
