"""The faults, as data: what is done to the running bank, and when.

A fault is a `Kill` (SIGKILL to one process the supervisor runs: it gets no chance to finish
anything, and the supervisor starts it again) or a `Restart` of a server the bank depends on
(stopped, left down a few seconds, started again). A scenario's `FaultPlan`s say how many
times each fault strikes while the load runs; each plan runs on its own thread, its strikes
spread evenly over the load's seconds, so that in the scenario with every fault they overlap.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from chaos.stack import Bank, LocalService, say


@dataclass(frozen=True)
class Strike:
    """One fault as it happened."""

    at: float  # seconds after the load started
    fault: str
    outcome: str
    struck: bool  # False when there was nothing to strike (a process still restarting) or it failed


class Fault(Protocol):
    @property
    def name(self) -> str: ...

    def strike(self, bank: Bank, services: dict[str, LocalService]) -> tuple[bool, str]:
        """Do it; whether it struck, and a few words on what happened."""
        ...


@dataclass(frozen=True)
class Kill:
    """SIGKILL to a process of the bank (`web` is gunicorn's master: its workers go with it)."""

    process: str

    @property
    def name(self) -> str:
        return f"kill -9 {self.process}"

    def strike(self, bank: Bank, services: dict[str, LocalService]) -> tuple[bool, str]:
        pid = bank.child_pid(self.process)
        if pid is None:
            return False, "not running (still restarting)"
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False, f"pid {pid} already gone"
        return True, f"pid {pid} killed"


@dataclass(frozen=True)
class Restart:
    """Stop a server the bank uses, leave it down `down_seconds`, start it again."""

    service: str  # "postgres" or "kafka": a deploy/local script of the stack
    down_seconds: float = 3.0

    @property
    def name(self) -> str:
        return f"restart {self.service}"

    def strike(self, bank: Bank, services: dict[str, LocalService]) -> tuple[bool, str]:
        service = services[self.service]
        began = time.monotonic()
        service.stop()
        time.sleep(self.down_seconds)
        service.start()
        return True, f"down {time.monotonic() - began:.0f} s"


@dataclass(frozen=True)
class FaultPlan:
    fault: Kill | Restart
    strikes: int
    # Where in the load the first strike falls, as a fraction of one interval: plans that run
    # together are staggered so that their strikes do not all fall at the same moment.
    offset: float = 0.5


@dataclass
class FaultRunner:
    """Strikes the plans' faults while the load runs, each plan on its own thread."""

    plans: tuple[FaultPlan, ...]
    seconds: float
    bank: Bank
    services: dict[str, LocalService]
    strikes: list[Strike] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, stop: threading.Event) -> None:
        started = time.monotonic()
        for plan in self.plans:
            thread = threading.Thread(target=self._run, args=(plan, started, stop), name=f"chaos-{plan.fault.name}")
            thread.start()
            self._threads.append(thread)

    def _run(self, plan: FaultPlan, started: float, stop: threading.Event) -> None:
        interval = self.seconds / plan.strikes
        for index in range(plan.strikes):
            due = started + interval * (index + plan.offset)
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            at = round(time.monotonic() - started, 1)
            try:
                struck, outcome = plan.fault.strike(self.bank, self.services)
            except Exception as error:  # noqa: BLE001 - a fault that could not be done is reported, not fatal
                struck, outcome = False, f"FAILED: {error}"
                with self._lock:
                    self.errors.append(f"{plan.fault.name} at {at}s: {error}")
            say(f"  {at:6.1f}s {plan.fault.name}: {outcome}")
            with self._lock:
                self.strikes.append(Strike(at, plan.fault.name, outcome, struck))

    def summary(self) -> str:
        """The faults that struck, counted, with the downtime of each restart."""
        struck: dict[str, list[Strike]] = {}
        for strike in self.strikes:
            if strike.struck:
                struck.setdefault(strike.fault, []).append(strike)
        parts = []
        for fault, strikes in struck.items():
            downtimes = [strike.outcome for strike in strikes if strike.outcome.startswith("down")]
            parts.append(f"{fault} x{len(strikes)}" + (f" ({', '.join(downtimes)})" if downtimes else ""))
        return ", ".join(parts) or "none"

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
