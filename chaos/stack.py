"""What `make chaos` runs the bank on, all of it its own and on loopback: a PostgreSQL server and
a Kafka broker started with the project's own scripts (deploy/local/) in a private directory on
free ports, so restarting them disturbs nothing else on the machine, and `manage.py serve_bank`
(the bank's supervisor) with every process it runs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "deploy" / "local"
# Where the shared local services keep their state (deploy/local/common.sh): the Kafka jars
# already downloaded there are borrowed rather than fetched again.
SHARED_LOCAL_DIR = Path(os.environ.get("FINTECH_LOCAL_DIR", "/var/tmp/fintech-local"))

T = TypeVar("T")


def say(message: str) -> None:
    """Progress goes to stderr; the table goes to stdout."""
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, every: float = 0.25) -> T:
    """The first true value of `predicate`, asked every `every` seconds; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def command(argv: list[str], *, env: dict[str, str], timeout: float) -> str:
    """Run one of the project's commands from its root; its output, or RuntimeError with it."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-3:])} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout


class LocalService:
    """One of deploy/local/<name>.sh, run in the chaos run's own directory with its own ports."""

    def __init__(self, name: str, local_dir: Path, ports: dict[str, int]) -> None:
        self.name = name
        self.env = {
            **os.environ,
            "FINTECH_LOCAL_DIR": str(local_dir),
            **{variable: str(port) for variable, port in ports.items()},
        }

    def run(self, action: str, *, timeout: float = 300) -> str:
        return command(["bash", str(SCRIPTS / f"{self.name}.sh"), action], env=self.env, timeout=timeout)

    def start(self) -> None:
        self.run("start")

    def stop(self) -> None:
        self.run("stop")

    def exports(self) -> dict[str, str]:
        """The `export NAME=value` lines of `<name>.sh env`."""
        lines = self.run("env").splitlines()
        return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))


class Stack:
    """The private PostgreSQL and Kafka of one chaos run, in a directory under /var/tmp (the
    postgres user must reach it, which it cannot under a user's private temporary directory)."""

    def __init__(self) -> None:
        # Named now (the bank's settings point into it), made when the servers start.
        self.directory = Path("/var/tmp") / f"fintech-chaos-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.postgres = LocalService("postgres", self.directory, {"FINTECH_PG_PORT": free_port()})
        self.kafka = LocalService(
            "kafka",
            self.directory,
            {"FINTECH_KAFKA_PORT": free_port(), "FINTECH_KAFKA_CONTROLLER_PORT": free_port()},
        )
        self.started: list[LocalService] = []

    def start(self) -> dict[str, str]:
        """Start both; the variables that point the bank at them."""
        self.directory.mkdir(mode=0o755)
        self.directory.chmod(0o755)  # whatever the umask: the postgres user must get through
        self._borrow_kafka_jars()
        for service in (self.postgres, self.kafka):
            say(f"starting a private {service.name} in {self.directory}")
            self.started.append(service)
            service.start()
        return {**self.postgres.exports(), **self.kafka.exports()}

    def _borrow_kafka_jars(self) -> None:
        # kafka.sh fetches the jars with Maven when its lib/ is missing or stale; the shared
        # broker's are the same files (checked by the pom's hash), so they are linked instead.
        shared = SHARED_LOCAL_DIR / "kafka" / "lib"
        if (shared / ".pom.sha256").exists():
            (self.directory / "kafka").mkdir(parents=True, exist_ok=True)
            (self.directory / "kafka" / "lib").symlink_to(shared, target_is_directory=True)

    def stop(self, *, keep: bool) -> None:
        """Stop what was started; remove the directory unless it is kept for a post-mortem."""
        for service in reversed(self.started):
            try:
                service.stop()
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                say(f"could not stop {service.name}: {error}")
        self.started.clear()
        if keep:
            say(f"logs and data kept in {self.directory}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


def terminate(process: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """SIGTERM to a process this harness started, SIGKILL to its group if it does not end in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.wait(timeout=30)


class Network:
    """The payment network, outside the bank: `manage.py simulate_payment_network` on the stack's
    Kafka. It answers each payment a second after it is asked, returns one in ten (and every
    payment to a closed account), and sends one answer in ten twice. It is no process of the bank,
    so no scenario kills it; one that a broker restart ended is started again before the next
    scenario."""

    ARGS = ("--delay", "1", "--return-rate", "0.1", "--duplicate-rate", "0.1", "--seed", "14")

    def __init__(self, env: dict[str, str], var_dir: Path) -> None:
        self.env = env
        self.log_path = var_dir / "payment-network.log"
        self.process: subprocess.Popen[bytes] | None = None

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "simulate_payment_network", *self.ARGS],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def stop(self) -> None:
        terminate(self.process, timeout=30)


class Bank:
    """`manage.py serve_bank` against the stack: the web server and every process it supervises."""

    def __init__(self, env: dict[str, str], var_dir: Path, name: str = "setup") -> None:
        self.env = env
        self.var_dir = var_dir
        self.port = free_port()
        self.status_path = var_dir / "serve-bank.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = var_dir / f"serve-bank-{name}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, timeout: float = 300) -> str:
        return command([sys.executable, "manage.py", *args], env=self.env, timeout=timeout)

    def start(self) -> None:
        self.status_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve_bank", "--bind", f"127.0.0.1:{self.port}", "--stop-timeout", "20"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # stopped by this harness (SIGTERM), not by a Ctrl-C meant for it
            )
        wait_until(self.healthy, timeout=120, what="the bank's /healthz")

    def healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def status(self) -> dict[str, Any]:
        try:
            status: dict[str, Any] = json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return status

    def child_pid(self, name: str) -> int | None:
        """The pid of supervised process `name` while it runs."""
        child = self.status().get("children", {}).get(name, {})
        pid = child.get("pid")
        return int(pid) if child.get("running") and pid else None

    def restarts(self) -> dict[str, int]:
        return {name: int(child["restarts"]) for name, child in self.status().get("children", {}).items()}

    def stop(self) -> None:
        """SIGTERM to the supervisor (it stops every process), SIGKILL if it does not finish."""
        terminate(self.process, timeout=60)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
