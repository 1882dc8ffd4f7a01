#!/usr/bin/env bash
# Serves the bank for `make run`: migrations and static files, then `manage.py serve_bank`, the
# supervisor of the web server (gunicorn), the event sweeper, the relay, the notification sender
# the expiry of fraud reviews nobody decided and the bank's other processes (fintech/serving;
# settings.FINTECH_PROCESSES).
# Honours the environment, so `eval "$(make -s services-up)"` first runs it on PostgreSQL/Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
PORT="${PORT:-8000}"

# Requests answer once their own unit of work committed (the transfer's steps included); the
# reactions (notifications, analytics) are delivered by the dispatcher process beside the server.
export FINTECH_REACTIONS_IN_PROCESS="${FINTECH_REACTIONS_IN_PROCESS:-0}"

$PY manage.py migrate --noinput >&2
$PY manage.py collectstatic --noinput -v 0 >&2
if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  $PY manage.py kafka_topics >/dev/null  # the broker does not create topics on its own
fi

if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  # serve_bank runs the payments consumer (payment.processed, payment.received); the network is outside.
  network_note="  Payments go to the network over Kafka; play it in another terminal with
    .venv/bin/python manage.py simulate_payment_network --settlement-file 'var/settlement-{date}.csv'"
else
  network_note="  Payments go to a payment network simulated in process (FINTECH_PAYMENT_NETWORK=simulator-inline)."
fi

cat >&2 <<MSG

  The bank is serving on http://127.0.0.1:${PORT}/  (API docs: /api/docs/, admin: /admin/)
  Get a token:  .venv/bin/python manage.py issue_token --sub teller-1 --scopes "customers:read customers:write kyc:review"
  Its processes and their pids: ${FINTECH_VAR_DIR:-var}/serve-bank.json; Ctrl-C stops them all.
  E-mails to customers: one file per message in ${EMAIL_FILE_PATH:-var/mail}/ (EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend prints them; EMAIL_HOST and EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend send them)
${network_note}

MSG
# exec: the supervisor gets Ctrl-C and SIGTERM itself, stops every process it started, and
# restarts one that dies (each restart is a JSON log line with the process's name).
exec $PY manage.py serve_bank --bind "127.0.0.1:${PORT}"
