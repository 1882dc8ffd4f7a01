#!/usr/bin/env bash
# Serves the bank for `make run`: migrations, the web server, the event sweeper and the relay.
# Honours the environment, so `eval "$(make -s services-up)"` first runs it on PostgreSQL/Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
PORT="${PORT:-8000}"

$PY manage.py migrate --noinput >&2
$PY manage.py collectstatic --noinput -v 0 >&2
if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  $PY manage.py kafka_topics >/dev/null  # the broker does not create topics on its own
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The sweeper delivers what in-process dispatch left (retries, crashes); the relay ships
# committed events to the sink (a log by default, Kafka when KAFKA_BOOTSTRAP_SERVERS is set).
$PY manage.py dispatch_events & pids+=($!)
$PY manage.py relay_outbox & pids+=($!)
# Payments the network has not answered in time are flagged for operations (never returned).
$PY manage.py flag_overdue_payments --every 60 & pids+=($!)
if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  # The payment network is outside: the relay ships payment.requested to it, and the payments
  # consumer group books its answers (payment.processed) and its credits (payment.received).
  # Without Kafka the network is simulated in process (FINTECH_PAYMENT_NETWORK=simulator-inline).
  $PY manage.py consume --group payments --topics payment.processed,payment.received & pids+=($!)
  network_note="  The payment network is outside, over Kafka: play it with
    .venv/bin/python manage.py simulate_payment_network --settlement-file 'var/settlement-{date}.csv'"
else
  network_note="  The payment network is simulated in process: payments settle as soon as they leave."
fi

cat >&2 <<MSG

  The bank is serving on http://127.0.0.1:${PORT}/  (API docs: /api/docs/, admin: /admin/)
  Get a token:  .venv/bin/python manage.py issue_token --sub teller-1 --scopes "customers:read customers:write kyc:review"
${network_note}

MSG
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
