"""The scenarios of `make chaos`: a load and the faults that strike while it runs.

One scenario per process the bank's supervisor runs (`kill -9` it, a few times), one per server
the bank depends on (restart it), and one with all of them at once. The processes come from the
bank's own settings (`FINTECH_PROCESSES`, and a `consumer-<group>` per Kafka consumer group), so
a service that adds a process there gets its scenario without a change here; a server is one
more entry of `SERVERS`, and a kind of load one more entry of `chaos.load.LOADS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.faults import FaultPlan, Kill, Restart

# Every scenario's load, unless it names its own (chaos.load.LOADS).
LOAD = ("transfers", "batches", "deposits", "payments")
# Seconds between two kills of one process: the supervisor's restart backoff doubles with each
# exit in a row (0.5 s, 1 s, 2 s, ...) until a run lasts 30 s, so kills much closer than this
# would keep a process down more than up.
KILL_EVERY_SECONDS = 12.0
RESTART_EVERY_SECONDS = 30.0

# The servers the bank depends on, each restarted by its scenario: (name, what the bank meets).
SERVERS = {
    "kafka": Restart("kafka", down_seconds=5.0),
    "postgres": Restart("postgres", down_seconds=3.0),
}

# The crash points of fintech/faults.py that make chaos strikes, each after so many passes by one
# process: a few times per process and scenario. (`before_outbox_write` is left to the tests: every
# worker that publishes passes it, and a consumer that dies every few records crawls.)
CRASH_POINTS = {
    "after_hold": 40,
    "after_commit_before_response": 40,
    "after_produce_before_mark": 20,
    "after_send_before_record": 250,
}
SERVER_NAMES = {"kafka": "The Kafka broker", "postgres": "PostgreSQL"}
# What each kind of process is, for the scenario's description.
PROCESS_ROLES = {
    "web": "the web server (gunicorn's master and its workers)",
    "dispatcher": "the dispatcher, which runs the choreography and the reactions",
    "relay": "the relay, which ships the outbox to Kafka",
    "notifications": "the notification sender",
    "overdue-payments": "the process that flags payments the network has not answered in time",
    "fraud-review-expiry": "the process that rejects reviews left undecided too long",
}


# How the bank hands out its events, as a scenario serves it (settings of config/settings.py).
DISPATCH = {
    # Requests only record their events; the dispatcher (an event a second old) and the Kafka
    # consumer groups (fed by the relay, often first) race for every step and every reaction, and
    # only the inbox keeps an event from being applied twice.
    "workers": {"FINTECH_EVENT_DISPATCH": "worker", "FINTECH_SWEEP_GRACE_SECONDS": "1"},
    # As `make run` serves it (deploy/local/run-bank.sh): a request continues the choreography's
    # steps in its own unit of work; the dispatcher takes the reactions at once.
    "served": {"FINTECH_EVENT_DISPATCH": "inline", "FINTECH_REACTIONS_IN_PROCESS": "0"},
}


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    faults: tuple[FaultPlan, ...]
    load: tuple[str, ...] = LOAD
    dispatch: str = "workers"  # a key of DISPATCH
    settings: tuple[tuple[str, str], ...] = ()  # more of the bank's environment

    @property
    def fault_names(self) -> str:
        return ", ".join(f"{plan.fault.name} x{plan.strikes}" for plan in self.faults) or "none"


def _strikes(seconds: float, every: float) -> int:
    return max(1, round(seconds / every))


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _role(process: str) -> str:
    if process.startswith("consumer-"):
        return f"the Kafka consumer group fintech.{process.removeprefix('consumer-')}"
    return PROCESS_ROLES.get(process, f"the process {process}")


def scenarios(processes: list[str], *, seconds: float) -> list[Scenario]:
    """Every scenario, in the order they run (those that serve the bank alike, together)."""
    kills = _strikes(seconds, KILL_EVERY_SECONDS)
    restarts = _strikes(seconds, RESTART_EVERY_SECONDS)
    found = [
        Scenario(
            process,
            f"SIGKILL to {_role(process)}, {_times(kills)} while the load runs; the supervisor restarts it.",
            (FaultPlan(Kill(process), kills),),
        )
        for process in processes
    ]
    found += [
        Scenario(
            name,
            f"{SERVER_NAMES[name]} stopped (its own clean shutdown), left down {fault.down_seconds:.0f} s and "
            f"started again, {_times(restarts)} while the load runs.",
            (FaultPlan(fault, restarts),),
        )
        for name, fault in SERVERS.items()
    ]
    # Everything together: each process killed once or twice, each server restarted once, all
    # staggered over the load so that they overlap.
    together = [FaultPlan(Kill(process), max(1, kills // 2)) for process in processes]
    together += [FaultPlan(fault, 1) for fault in SERVERS.values()]
    count = len(together)
    staggered = tuple(
        FaultPlan(plan.fault, plan.strikes, offset=0.15 + 0.7 * index / count) for index, plan in enumerate(together)
    )
    everything = "each process killed, Kafka and PostgreSQL restarted, overlapping"
    found.append(Scenario("all", f"Every fault above in one run: {everything}.", staggered))
    found.append(
        Scenario(
            "crash-points",
            "Every process that reaches a named crash point (fintech/faults.py) dies there with os._exit, again and "
            "again: "
            + ", ".join(f"{point} after {passes} passes" for point, passes in CRASH_POINTS.items())
            + " (the web server's workers, the relay, the notification sender); each is restarted and goes on.",
            (),
            settings=(("FINTECH_CRASH_AT", ",".join(f"{point}:{passes}" for point, passes in CRASH_POINTS.items())),),
        )
    )
    # As `make run` serves the bank, the web server does the choreography's steps: killing it
    # interrupts a transfer inside its unit of work, and everything at once once more.
    served = "As `make run` serves the bank (a request does the transfer's steps, the dispatcher the reactions): "
    found.append(
        Scenario(
            "served-web",
            served + f"SIGKILL to {_role('web')}, {_times(kills)}.",
            (FaultPlan(Kill("web"), kills),),
            dispatch="served",
        )
    )
    found.append(Scenario("served-all", served + everything + ".", staggered, dispatch="served"))
    return found
