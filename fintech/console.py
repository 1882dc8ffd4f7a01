"""What long management commands show on a terminal while they work."""

from __future__ import annotations

from typing import TextIO


class ProgressBar:
    """`bar(stage, done, total)` redraws `stage [#####.....] done/total` on one line of `stream`
    (stderr, so the report on stdout stays clean for scripts); quiet draws nothing."""

    WIDTH = 30

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        filled = self.WIDTH * min(done, total) // total if total else self.WIDTH
        self.stream.write(f"\r{stage} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
