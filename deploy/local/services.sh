#!/usr/bin/env bash
# Start/stop the local backing services: services.sh {up|down|status} [service ...]
#
#   env_lines="$(deploy/local/services.sh up)" && eval "$env_lines"
#
# `up` prints ONLY `export NAME=value` lines on stdout (all progress goes to
# stderr), so its output can be eval'ed. Each service NAME is handled by
# deploy/local/NAME.sh, which must implement {start|stop|status|env}; adding
# kafka.sh, cassandra.sh, ... needs no change here.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=services # used by log() in common.sh
export LOG_TAG

usage() {
    echo "usage: $0 {up|down|status} [service ...]  (default: \$FINTECH_SERVICES or 'postgres redis kafka keycloak')" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
action=$1
shift
if [[ $# -gt 0 ]]; then
    services=("$@")
else
    read -r -a services <<<"${FINTECH_SERVICES:-postgres redis kafka keycloak}"
fi

script_for() {
    local svc=$1
    # Reject anything that isn't a plain name, so we only ever run our own scripts.
    [[ "$svc" =~ ^[a-z0-9_-]+$ && "$svc" != common && "$svc" != services ]] \
        || die "invalid service name: '$svc'"
    local script="$FINTECH_LOCAL_SCRIPTS/$svc.sh"
    [[ -f "$script" ]] || die "unknown service '$svc' (no $script)"
    printf '%s' "$script"
}

# Resolve every name before doing anything, so a typo fails fast.
scripts=()
for svc in "${services[@]}"; do
    scripts+=("$(script_for "$svc")")
done

case "$action" in
    up)
        for script in "${scripts[@]}"; do
            bash "$script" start >&2
        done
        # Exports only after everything started, so a failure prints nothing
        # eval-able (and the exit status is non-zero).
        for script in "${scripts[@]}"; do
            bash "$script" env
        done
        ;;
    down)
        # Reverse order: later services may depend on earlier ones.
        for ((i = ${#scripts[@]} - 1; i >= 0; i--)); do
            bash "${scripts[i]}" stop >&2
        done
        ;;
    status)
        rc=0
        for script in "${scripts[@]}"; do
            bash "$script" status || rc=1
        done
        exit "$rc"
        ;;
    *) usage ;;
esac
