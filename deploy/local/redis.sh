#!/usr/bin/env bash
# Local Redis for development and CI: redis.sh {start|stop|status|env}
#
# Runs redis-server directly (no systemd/init script) on 127.0.0.1 only, with
# persistence disabled. If installing the Debian package auto-started the
# system redis on 6379, that instance is left alone; we don't use it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=redis # used by log() in common.sh
export LOG_TAG

REDIS_PORT="${FINTECH_REDIS_PORT:-56379}"
REDIS_HOST=127.0.0.1
check_ports FINTECH_REDIS_PORT="$REDIS_PORT"

REDIS_STATE="$FINTECH_LOCAL_DIR/redis"
REDIS_DIR="$REDIS_STATE/data"
REDIS_PIDFILE="$REDIS_STATE/redis.pid"
REDIS_LOG="$REDIS_STATE/log/redis.log"

# Don't run a network daemon as root when we don't have to: as root use the
# `redis` user the Debian package creates (fall back to root if it's absent).
if is_root && id -u redis >/dev/null 2>&1; then
    REDIS_OS_USER=redis
else
    REDIS_OS_USER="$(id -un)"
fi

cli() {
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
}

is_ready() {
    command -v redis-cli >/dev/null 2>&1 || return 1
    [[ "$(cli ping 2>/dev/null)" == "PONG" ]]
}

our_pid() {
    local pid
    [[ -f "$REDIS_PIDFILE" ]] || return 1
    pid="$(<"$REDIS_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    printf '%s' "$pid"
}

cmd_start() {
    take_lock redis
    # redis-tools provides redis-cli (a dependency anyway; listed for clarity).
    ensure_apt_packages redis-server redis-tools
    # Refresh after install: REDIS_OS_USER may only exist now.
    if is_root && id -u redis >/dev/null 2>&1; then
        REDIS_OS_USER=redis
    fi

    if is_ready; then
        if our_pid >/dev/null; then
            log "already running on $REDIS_HOST:$REDIS_PORT"
        else
            log "something already answers on $REDIS_HOST:$REDIS_PORT (not started by us); using it"
        fi
        log "ready: $(cmd_env)"
        return 0
    fi
    require_ports_free "$REDIS_HOST" redis "$REDIS_PORT"

    ensure_state_dir
    mkdir -p "$REDIS_STATE" "$REDIS_DIR" "$(dirname "$REDIS_LOG")"
    rm -f "$REDIS_PIDFILE" # stale (process is gone, checked above)
    if is_root; then
        chown -R "$REDIS_OS_USER:" "$REDIS_STATE"
    fi

    log "starting on $REDIS_HOST:$REDIS_PORT (log: $REDIS_LOG)"
    # No config file: everything on the command line. --save '' and
    # --appendonly no: cache/broker for tests, no persistence wanted.
    # 9>&- : don't let the daemon inherit our lock fd.
    if ! run_as "$REDIS_OS_USER" redis-server \
        --bind "$REDIS_HOST" \
        --port "$REDIS_PORT" \
        --protected-mode yes \
        --daemonize yes \
        --supervised no \
        --dir "$REDIS_DIR" \
        --pidfile "$REDIS_PIDFILE" \
        --logfile "$REDIS_LOG" \
        --save '' \
        --appendonly no \
        >&2 9>&-; then
        tail -n 30 "$REDIS_LOG" >&2 || true
        die "redis-server failed to start"
    fi

    if ! wait_for_port "$REDIS_HOST" "$REDIS_PORT" 30; then
        tail -n 30 "$REDIS_LOG" >&2 || true
        die "redis not listening on $REDIS_HOST:$REDIS_PORT"
    fi
    local i
    for i in $(seq 1 50); do
        is_ready && break
        ((i < 50)) || die "redis not answering PING"
        sleep 0.2
    done
    log "ready: $(cmd_env)"
}

cmd_stop() {
    take_lock redis
    local pid
    if ! pid="$(our_pid)"; then
        log "not running"
        rm -f "$REDIS_PIDFILE"
        return 0
    fi
    log "stopping (pid $pid)"
    cli shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        pid_alive "$pid" || break
        if ((i == 100)); then
            log "did not exit after 20s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$REDIS_PIDFILE"
}

cmd_status() {
    if is_ready; then
        echo "redis: running on $REDIS_HOST:$REDIS_PORT (dir: $REDIS_DIR, log: $REDIS_LOG)"
        return 0
    fi
    echo "redis: not running"
    return 1
}

cmd_env() {
    echo "export REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT/0"
}

service_main "$@"
