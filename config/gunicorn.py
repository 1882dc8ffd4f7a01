"""gunicorn's configuration: the bank's web server, for `make run` (`manage.py serve_bank`) and the image.

    python -m gunicorn --config python:config.gunicorn config.wsgi:application [--bind HOST:PORT]

gthread workers: each worker process runs `FINTECH_WEB_THREADS` requests at once, so a request
waiting on the database (SQLite's write lock, a PostgreSQL row lock) does not hold a whole
process; one process per core (`FINTECH_WEB_WORKERS`, 0 = sized to the machine) uses every core
despite the GIL. The sizes are measured: docs/benchmarks.md. Everything comes from the settings
module, so the knobs are the bank's environment variables; options given on the command line
(`--bind`, `--workers`, ...) win over these.
"""

from __future__ import annotations

import os

from config import settings


def _cores() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the host's)."""
    return len(os.sched_getaffinity(0)) or 1


bind = [settings.FINTECH_WEB_BIND]
worker_class = "gthread"
workers = settings.FINTECH_WEB_WORKERS or _cores()
threads = settings.FINTECH_WEB_THREADS
backlog = settings.FINTECH_WEB_BACKLOG
# A request in flight when the server is stopped gets this long to finish; the supervisor waits longer.
graceful_timeout = 20
# The heartbeat files of the workers: in memory where there is /dev/shm (a container's disk can stall them).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a directory, not a file name

# The bank's JSON log lines for gunicorn's own messages and its access log (settings.LOGGING).
logconfig_dict = settings.LOGGING
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# No control socket (gunicornc): the supervisor (or the container runtime) manages the server, and
# two servers on one machine would share its default path.
control_socket_disable = True
