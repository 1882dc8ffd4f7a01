#!/usr/bin/env bash
# Local Apache Kafka for development and CI: kafka.sh {start|stop|status|env}
#
# Runs a real Kafka 4.x broker in KRaft mode (one JVM that is both controller
# and broker) on 127.0.0.1, without Docker and without the binary tarball:
# the jars come from Maven Central through deploy/local/kafka/pom.xml and
# `mvn dependency:copy-dependencies`, into $FINTECH_LOCAL_DIR/kafka/lib.
# They are downloaded again only when the pom changes (stamped by hash).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=kafka # used by log() in common.sh
export LOG_TAG

KAFKA_HOST=127.0.0.1
KAFKA_PORT="${FINTECH_KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${FINTECH_KAFKA_CONTROLLER_PORT:-59093}"
KAFKA_START_TIMEOUT="${FINTECH_KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT=60
# Heap: ample for the test suite; the broker runs at ~250 MB RSS.
KAFKA_HEAP_OPTS="${FINTECH_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"

KAFKA_SRC="$FINTECH_LOCAL_SCRIPTS/kafka" # pom.xml, templates (in git)
KAFKA_STATE="$FINTECH_LOCAL_DIR/kafka"
KAFKA_LIB="$KAFKA_STATE/lib"        # jar cache (classpath)
KAFKA_CONF_DIR="$KAFKA_STATE/config" # rendered server.properties
KAFKA_DATA="$KAFKA_STATE/data"      # log.dirs (topics + KRaft metadata)
KAFKA_LOG_DIR="$KAFKA_STATE/log"    # kafka.logs.dir
KAFKA_OUT="$KAFKA_LOG_DIR/kafka.out" # stdout/stderr of the current run
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
KAFKA_CLUSTER_ID_FILE="$KAFKA_STATE/cluster.id"
KAFKA_PROPS="$KAFKA_CONF_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_SRC/log4j2.yaml"

check_ports FINTECH_KAFKA_PORT="$KAFKA_PORT" FINTECH_KAFKA_CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT"

# --- Java -------------------------------------------------------------------

# Kafka 4.x brokers need Java 17+; we pin 17 (the JDK this project is tested
# with; newer ones on the machine are ignored). Order: $JAVA_HOME if it is a
# 17, `java` on PATH if it is a 17, any /usr/lib/jvm/*17*, else apt.
find_java17() {
    local cand
    for cand in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java 2>/dev/null || true)" \
        /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
        [[ -n "$cand" && -x "$cand" ]] || continue
        if [[ "$(java_major "$cand")" == 17 ]]; then
            printf '%s' "$cand"
            return 0
        fi
    done
    return 1
}

ensure_java() {
    if ! JAVA="$(find_java17)"; then
        ensure_apt_packages openjdk-17-jre-headless
        JAVA="$(find_java17)" || die "no Java 17 found (JAVA_HOME, PATH, /usr/lib/jvm)"
    fi
    # Maven runs on the same JDK.
    JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$JAVA")")")"
    export JAVA_HOME
}

# --- Jars -------------------------------------------------------------------

pom_hash() {
    sha256sum "$KAFKA_SRC/pom.xml" | awk '{print $1}'
}

jars_current() {
    [[ -f "$KAFKA_LIB/.pom.sha256" ]] \
        && [[ "$(<"$KAFKA_LIB/.pom.sha256")" == "$(pom_hash)" ]] \
        && compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null
}

ensure_jars() {
    if jars_current; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || ensure_apt_packages maven
    local build="$KAFKA_STATE/build" new="$KAFKA_STATE/lib.new" t0=$SECONDS
    log "downloading Kafka jars (deploy/local/kafka/pom.xml) into $KAFKA_LIB"
    rm -rf "$build" "$new"
    mkdir -p "$build"
    # Run Maven on a copy so that nothing (target/, ...) lands in the repo.
    cp "$KAFKA_SRC/pom.xml" "$build/pom.xml"
    # -B: batch mode (no stdin, CI); -q: errors only. Output goes to a file
    # (Maven 3.8 prints stray colour codes even with -B -q) and is shown only
    # on failure. Into lib.new, then swapped in, so an interrupted download
    # never leaves a half-filled classpath.
    if ! (cd "$build" && mvn -B -q -ntp dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$new" \
        </dev/null >"$build/mvn.log" 2>&1 9>&-); then
        sed 's/\x1b\[[0-9;]*m//g' "$build/mvn.log" | tail -n 40 >&2 || true
        rm -rf "$new"
        die "mvn dependency:copy-dependencies failed (output above, full log: $build/mvn.log)"
    fi
    compgen -G "$new/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar after download"
    pom_hash >"$new/.pom.sha256"
    rm -rf "$KAFKA_LIB"
    mv "$new" "$KAFKA_LIB"
    rm -rf "$build"
    log "jars ready ($(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIB" | cut -f1)) in $((SECONDS - t0))s"
}

kafka_version() {
    local jar
    jar="$(compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" | head -n 1)" || return 1
    jar="${jar##*/kafka_2.13-}"
    printf '%s' "${jar%.jar}"
}

# --- Config and storage -----------------------------------------------------

render_config() {
    mkdir -p "$KAFKA_CONF_DIR"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
        "$KAFKA_SRC/server.properties.template" >"$KAFKA_PROPS.tmp"
    if grep -q '@[A-Z_]*@' "$KAFKA_PROPS.tmp"; then
        die "unfilled placeholder in $KAFKA_PROPS.tmp"
    fi
    mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

# Common JVM system properties for the broker and its tools.
jvm_sysprops() {
    printf '%s\n' "-Dkafka.logs.dir=$KAFKA_LOG_DIR" \
        "-Dlog4j2.configurationFile=$KAFKA_LOG4J" \
        -Djava.awt.headless=true
}

kafka_java() {
    local props=()
    mapfile -t props < <(jvm_sysprops)
    "$JAVA" "${props[@]}" -cp "$KAFKA_LIB/*" "$@"
}

# A KRaft log dir must be formatted once with a cluster id; the id is kept in
# the state dir so a re-format (after deleting data/) reuses it.
ensure_formatted() {
    if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
        return 0
    fi
    local cid=""
    if [[ -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
        cid="$(<"$KAFKA_CLUSTER_ID_FILE")"
    fi
    if [[ ! "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]]; then
        cid="$(kafka_java kafka.tools.StorageTool random-uuid </dev/null 2>/dev/null | tail -n 1)"
        [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave '$cid'"
        printf '%s\n' "$cid" >"$KAFKA_CLUSTER_ID_FILE"
    fi
    log "formatting $KAFKA_DATA (cluster id $cid)"
    mkdir -p "$KAFKA_DATA"
    # Static controller.quorum.voters, so no --standalone. The tool dumps the
    # whole broker config: keep that in a file, show it only on failure.
    local flog="$KAFKA_LOG_DIR/format.log"
    if ! kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
        --ignore-formatted </dev/null >"$flog" 2>&1 9>&-; then
        tail -n 40 "$flog" >&2 || true
        die "kafka-storage format failed (full output: $flog)"
    fi
    log "$(grep -m 1 '^Formatting' "$flog" || echo formatted)"
}

# --- Process ----------------------------------------------------------------

# PID from the pid file, if that process is alive and is our broker (guards
# against a stale pid file whose PID was reused after a reboot).
our_pid() {
    local pid
    [[ -f "$KAFKA_PIDFILE" ]] || return 1
    pid="$(<"$KAFKA_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $KAFKA_PROPS" || return 1
    printf '%s' "$pid"
}

started_line() {
    grep -q 'Kafka Server started' "$KAFKA_OUT" 2>/dev/null
}

fail_start() {
    log "last lines of $KAFKA_OUT:"
    tail -n 40 "$KAFKA_OUT" >&2 || true
    die "$*"
}

cmd_start() {
    take_lock kafka
    ensure_state_dir
    mkdir -p "$KAFKA_STATE" "$KAFKA_LOG_DIR"

    local pid
    if pid="$(our_pid)"; then
        if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
            log "already running on $KAFKA_HOST:$KAFKA_PORT (pid $pid)"
            if ! jars_current; then
                log "note: deploy/local/kafka/pom.xml changed; restart (stop, start) to use it"
            fi
            log "ready: $(cmd_env)"
            return 0
        fi
        # Alive but not listening yet (e.g. a concurrent start, or recovery
        # after a crash): wait for it below instead of starting another.
        log "broker (pid $pid) is up but not listening yet; waiting"
    else
        require_ports_free "$KAFKA_HOST" broker "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
        ensure_java
        ensure_jars
        render_config
        ensure_formatted
        rm -f "$KAFKA_PIDFILE"
        # Keep the previous run's console log for post-mortems.
        if [[ -f "$KAFKA_OUT" ]]; then
            mv -f "$KAFKA_OUT" "$KAFKA_OUT.prev"
        fi

        local sysprops=() heap=()
        mapfile -t sysprops < <(jvm_sysprops)
        read -r -a heap <<<"$KAFKA_HEAP_OPTS"
        log "starting Kafka $(kafka_version) on $KAFKA_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, log: $KAFKA_OUT)"
        # setsid + nohup: detached from the caller's session/terminal;
        # </dev/null: no stdin (CI); 9>&-: don't inherit our lock fd.
        (cd "$KAFKA_STATE" && exec setsid nohup "$JAVA" "${heap[@]}" \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
            "${sysprops[@]}" \
            -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_PROPS" \
            </dev/null >"$KAFKA_OUT" 2>&1 9>&-) &
        pid=$!
        printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
    fi

    # Ready = the broker logged "Kafka Server started" AND the client port
    # accepts connections.
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) t0=$SECONDS
    until started_line && port_open "$KAFKA_HOST" "$KAFKA_PORT"; do
        if ! pid_alive "$pid"; then
            rm -f "$KAFKA_PIDFILE"
            fail_start "broker exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            fail_start "broker not ready after ${KAFKA_START_TIMEOUT}s (still running as pid $pid; 'kafka.sh stop' to kill it)"
        fi
        sleep 0.5
    done
    log "ready in $((SECONDS - t0))s (pid $pid): $(cmd_env)"
}

cmd_stop() {
    take_lock kafka
    local pid
    if ! pid="$(our_pid)"; then
        log "not running"
        rm -f "$KAFKA_PIDFILE"
        return 0
    fi
    log "stopping (pid $pid)"
    stop_process "$pid" "$KAFKA_STOP_TIMEOUT"
    rm -f "$KAFKA_PIDFILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(our_pid)" && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        echo "kafka: running on $KAFKA_HOST:$KAFKA_PORT (pid $pid, version $(kafka_version || echo '?'), data: $KAFKA_DATA, log: $KAFKA_OUT)"
        return 0
    fi
    echo "kafka: not running"
    return 1
}

cmd_env() {
    echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_PORT"
}

service_main "$@"
