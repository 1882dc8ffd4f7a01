"""Named points where the process can be made to die on purpose, for the crash tests and
`make chaos`: with `FINTECH_CRASH_AT=<point>` in its environment, a process that reaches the
point exits at once with status 86 (`os._exit`: no cleanup, no commit, no response), as if it
had been killed there. Unset (always, in production) a point costs one dictionary lookup.

`FINTECH_CRASH_AT=<point>:<passes>,<point>:<passes>` names several points, each passed that many
times before the process dies at the next: a process restarted after each crash keeps working
between crashes, which is how `make chaos` strikes every point again and again under load.

The points, in the order a transfer meets them:
- `after_hold`: the transfer's hold is placed, inside its transaction (nothing committed).
- `before_outbox_write`: the unit of work is about to write its events (nothing committed).
- `after_commit_before_response`: the request's work committed; the client hears nothing.
- `after_produce_before_mark`: the broker acknowledged a batch the relay has not marked sent.
- `after_send_before_record`: a notification went out and is not yet recorded as sent.
"""

from __future__ import annotations

import os

CRASH_STATUS = 86
POINTS = (
    "after_hold",
    "before_outbox_write",
    "after_commit_before_response",
    "after_produce_before_mark",
    "after_send_before_record",
)


_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here if this process was told to (`FINTECH_CRASH_AT`)."""
    told = os.environ.get("FINTECH_CRASH_AT")
    if not told:
        return
    for point in told.split(","):
        point_name, _, passes = point.strip().partition(":")
        if point_name == name:
            _passes[name] = _passes.get(name, 0) + 1
            if _passes[name] > int(passes or 0):
                os._exit(CRASH_STATUS)
