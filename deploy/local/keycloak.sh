#!/usr/bin/env bash
# Local Keycloak (the bank's identity provider): keycloak.sh {start|stop|status|env}
#
# Runs a real Keycloak 26 server in dev mode (`kc.sh start-dev`, embedded H2 database) on
# 127.0.0.1, without Docker: the server distribution (org.keycloak:keycloak-quarkus-dist,
# tar.gz) comes from Maven Central through deploy/keycloak/pom.xml and
# `mvn dependency:unpack`, into $FINTECH_LOCAL_DIR/keycloak/dist. It is unpacked again
# only when the pom changes (stamped by hash). The realm (deploy/keycloak/realm*.json) is
# imported at start; when those files change, the next start resets the dev database so
# they are imported afresh.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=keycloak # used by log() in common.sh
export LOG_TAG

KC_HOST=127.0.0.1
KC_PORT="${FINTECH_KEYCLOAK_PORT:-58080}"
# Keycloak's management interface (health, metrics) defaults to port 9000: moved off it.
KC_MGMT_PORT="${FINTECH_KEYCLOAK_MANAGEMENT_PORT:-58081}"
# The first start builds (Quarkus augmentation) and imports the realm: minutes on a busy box.
KC_START_TIMEOUT="${FINTECH_KEYCLOAK_START_TIMEOUT:-420}"
KC_STOP_TIMEOUT=60
KC_HEAP="${FINTECH_KEYCLOAK_HEAP_OPTS:--Xms64m -Xmx512m}"
KC_REALM=fintech
# The master realm's bootstrap administrator. Local, loopback-only development credentials,
# not a secret (the tests use them for the admin REST API).
KC_ADMIN_USER="${FINTECH_KEYCLOAK_ADMIN_USER:-admin}"
KC_ADMIN_PASSWORD="${FINTECH_KEYCLOAK_ADMIN_PASSWORD:-admin}"
# The confidential back-office client's secret as set in deploy/keycloak/realm.json: a fixed
# value for this local realm only, not a secret.
KC_BACKOFFICE_SECRET=fintech-backoffice-local-secret

KC_SRC="$(cd "$FINTECH_LOCAL_SCRIPTS/../keycloak" && pwd -P)" # pom.xml, realm files (in git)
KC_STATE="$FINTECH_LOCAL_DIR/keycloak"
KC_DIST="$KC_STATE/dist"        # unpacked distribution (the server home lives inside)
KC_LOG_DIR="$KC_STATE/log"
KC_OUT="$KC_LOG_DIR/keycloak.out" # console output of the current run
KC_PIDFILE="$KC_STATE/keycloak.pid"

check_ports FINTECH_KEYCLOAK_PORT="$KC_PORT" FINTECH_KEYCLOAK_MANAGEMENT_PORT="$KC_MGMT_PORT"

issuer_url() {
    printf 'http://%s:%s/realms/%s' "$KC_HOST" "$KC_PORT" "$KC_REALM"
}

# --- Java -------------------------------------------------------------------

# Keycloak 26.x needs Java 21 or newer; the machine's default `java` is 17. Order:
# $FINTECH_KEYCLOAK_JAVA_HOME, the Temurin 25 JDK, any /usr/lib/jvm JDK >= 21.
find_kc_java_home() {
    local home major
    for home in ${FINTECH_KEYCLOAK_JAVA_HOME:+"$FINTECH_KEYCLOAK_JAVA_HOME"} \
        /usr/lib/jvm/temurin-25* /usr/lib/jvm/*; do
        [[ -x "$home/bin/java" ]] || continue
        major="$(java_major "$home/bin/java")"
        if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 21)); then
            printf '%s' "$home"
            return 0
        fi
    done
    return 1
}

# --- Distribution -----------------------------------------------------------

pom_hash() {
    sha256sum "$KC_SRC/pom.xml" | awk '{print $1}'
}

# The server home inside the unpacked distribution (keycloak-<version>).
kc_home() {
    local home
    home="$(compgen -G "$KC_DIST/keycloak-*/bin/kc.sh" | head -n 1)" || return 1
    printf '%s' "${home%/bin/kc.sh}"
}

kc_version() {
    local home
    home="$(kc_home)" || return 1
    printf '%s' "${home##*/keycloak-}"
}

dist_current() {
    [[ -f "$KC_DIST/.pom.sha256" ]] \
        && [[ "$(<"$KC_DIST/.pom.sha256")" == "$(pom_hash)" ]] \
        && kc_home >/dev/null
}

ensure_dist() {
    if dist_current; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || ensure_apt_packages maven
    local build="$KC_STATE/build" new="$KC_STATE/dist.new" t0=$SECONDS
    log "fetching the Keycloak distribution (deploy/keycloak/pom.xml) into $KC_DIST"
    rm -rf "$build" "$new"
    mkdir -p "$build"
    # Maven runs on a copy so that nothing (target/, ...) lands in the repo; into dist.new,
    # then swapped in, so an interrupted download never leaves half a server.
    cp "$KC_SRC/pom.xml" "$build/pom.xml"
    if ! (cd "$build" && mvn -B -q -ntp dependency:unpack -Dkeycloak.unpack.dir="$new" \
        </dev/null >"$build/mvn.log" 2>&1 9>&-); then
        sed 's/\x1b\[[0-9;]*m//g' "$build/mvn.log" | tail -n 40 >&2 || true
        rm -rf "$new"
        die "mvn dependency:unpack failed (output above, full log: $build/mvn.log)"
    fi
    compgen -G "$new/keycloak-*/bin/kc.sh" >/dev/null || die "no keycloak-*/bin/kc.sh after unpacking"
    pom_hash >"$new/.pom.sha256"
    rm -rf "$KC_DIST"
    mv "$new" "$KC_DIST"
    rm -rf "$build"
    log "Keycloak $(kc_version) unpacked ($(du -sh "$KC_DIST" | cut -f1)) in $((SECONDS - t0))s"
}

# --- Realm ------------------------------------------------------------------

realm_hash() {
    cat "$KC_SRC"/realm*.json | sha256sum | awk '{print $1}'
}

# Copies the realm files into data/import. --import-realm skips a realm that already exists,
# so when the files changed since the database was created, the dev database is reset (it
# holds nothing but what the import and tests put there).
stage_realm() {
    local home=$1 stamp="$1/data/.realm.sha256"
    mkdir -p "$home/data/import"
    if [[ -d "$home/data/h2" ]] && [[ "$(cat "$stamp" 2>/dev/null || true)" != "$(realm_hash)" ]]; then
        log "realm files changed: resetting the dev database ($home/data/h2) to re-import them"
        rm -rf "$home/data/h2"
    fi
    rm -f "$home/data/import"/*.json
    cp "$KC_SRC"/realm*.json "$home/data/import/"
    realm_hash >"$stamp"
}

# --- Process ----------------------------------------------------------------

# PID from the pid file, if that process is alive and is our server (kc.sh, or the JVM it
# became): guards against a stale pid file whose PID was reused.
our_pid() {
    local pid home
    [[ -f "$KC_PIDFILE" ]] || return 1
    pid="$(<"$KC_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    home="$(kc_home)" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$home/" || return 1
    printf '%s' "$pid"
}

http_ok() {
    curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null
}

ready() {
    http_ok "$(issuer_url)/.well-known/openid-configuration"
}

fail_start() {
    log "last lines of $KC_OUT:"
    tail -n 60 "$KC_OUT" >&2 || true
    die "$*"
}

cmd_start() {
    take_lock keycloak
    ensure_state_dir
    mkdir -p "$KC_STATE" "$KC_LOG_DIR"
    command -v curl >/dev/null 2>&1 || ensure_apt_packages curl

    local pid
    # A realm file changed under a running server: its realm is stale (tokens would lack new
    # scopes), and the import happens only at start, so restart it.
    if pid="$(our_pid)" && [[ "$(cat "$(kc_home)/data/.realm.sha256" 2>/dev/null || true)" != "$(realm_hash)" ]]; then
        log "realm files changed since this server started: restarting it (pid $pid) to re-import them"
        stop_process "$pid" "$KC_STOP_TIMEOUT"
        rm -f "$KC_PIDFILE"
    fi
    if pid="$(our_pid)"; then
        if ready; then
            log "already running on $KC_HOST:$KC_PORT (pid $pid)"
            if ! dist_current; then
                log "note: deploy/keycloak/pom.xml changed; restart (stop, start) to use it"
            fi
            log "ready: $(cmd_env | head -n 1)"
            return 0
        fi
        log "server (pid $pid) is up but not ready yet; waiting"
    else
        require_ports_free "$KC_HOST" Keycloak "$KC_PORT" "$KC_MGMT_PORT"
        local java_home home
        java_home="$(find_kc_java_home)" \
            || die "Keycloak needs Java 21+: none under /usr/lib/jvm (set FINTECH_KEYCLOAK_JAVA_HOME)"
        ensure_dist
        home="$(kc_home)"
        stage_realm "$home"
        rm -f "$KC_PIDFILE"
        if [[ -f "$KC_OUT" ]]; then
            mv -f "$KC_OUT" "$KC_OUT.prev"
        fi

        log "starting Keycloak $(kc_version) on http://$KC_HOST:$KC_PORT (management :$KC_MGMT_PORT," \
            "Java $(java_major "$java_home/bin/java"), log: $KC_OUT)"
        # setsid + nohup: detached from the caller's session; </dev/null: no stdin (CI);
        # 9>&-: don't inherit our lock fd. kc.sh forwards SIGTERM to the JVM.
        (cd "$KC_STATE" && exec env JAVA_HOME="$java_home" PATH="$java_home/bin:$PATH" \
            KC_BOOTSTRAP_ADMIN_USERNAME="$KC_ADMIN_USER" KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_ADMIN_PASSWORD" \
            JAVA_OPTS_KC_HEAP="$KC_HEAP" \
            setsid nohup "$home/bin/kc.sh" start-dev \
            --http-host="$KC_HOST" --http-port="$KC_PORT" \
            --http-management-port="$KC_MGMT_PORT" --http-management-host="$KC_HOST" \
            --health-enabled=true --import-realm \
            </dev/null >"$KC_OUT" 2>&1 9>&-) &
        pid=$!
        printf '%s\n' "$pid" >"$KC_PIDFILE"
    fi

    local deadline=$((SECONDS + KC_START_TIMEOUT)) t0=$SECONDS
    until ready; do
        if ! pid_alive "$pid"; then
            rm -f "$KC_PIDFILE"
            fail_start "Keycloak exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            fail_start "Keycloak not ready after ${KC_START_TIMEOUT}s (still running as pid $pid; 'keycloak.sh stop' to kill it)"
        fi
        sleep 1
    done
    log "ready in $((SECONDS - t0))s (pid $pid): $(cmd_env | head -n 1)"
}

cmd_stop() {
    take_lock keycloak
    local pid
    if ! pid="$(our_pid)"; then
        log "not running"
        rm -f "$KC_PIDFILE"
        return 0
    fi
    log "stopping (pid $pid)"
    stop_process "$pid" "$KC_STOP_TIMEOUT"
    rm -f "$KC_PIDFILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(our_pid)" && ready; then
        echo "keycloak: running on http://$KC_HOST:$KC_PORT (pid $pid, version $(kc_version || echo '?'), realm $KC_REALM, log: $KC_OUT)"
        return 0
    fi
    echo "keycloak: not running"
    return 1
}

cmd_env() {
    echo "export OIDC_ISSUER=$(issuer_url)"
    echo "export OIDC_RP_CLIENT_SECRET=$KC_BACKOFFICE_SECRET"
}

service_main "$@"
