"""What long management commands show on a terminal while they work."""

from __future__ import annotations

from typing import TextIO

from django.core.management.base import OutputWrapper


class ProgressBar:
    """`bar(stage, done, total)` redraws `stage [#####.....] done/total` on one line of `stream`
    (a command's stderr, so the report on stdout stays clean for scripts); quiet draws nothing."""

    WIDTH = 30

    def __init__(self, stream: TextIO | OutputWrapper, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet

    def _write(self, text: str) -> None:
        if isinstance(self.stream, OutputWrapper):
            self.stream.write(text, ending="")  # a command's wrapper would end every redraw with a newline
        else:
            self.stream.write(text)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        filled = self.WIDTH * min(done, total) // total if total else self.WIDTH
        self._write(f"\r{stage} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}")
        if done >= total:
            self._write("\n")
        self.stream.flush()
