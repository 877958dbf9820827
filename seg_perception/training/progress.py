"""Progress bars with an ETA: tqdm (installed with transformers) or a plain fallback.

Long runs are often started in the background with their output in a log file; there a
bar redrawn ten times a second would flood the log, so off a terminal it redraws at most
every 30 s.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> Any:
    """A tqdm bar (or a minimal stand-in with the same methods used here) on stderr."""
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.5 if interactive else 30.0)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainBar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)


def write(message: str) -> None:
    """Print a line without breaking a running bar."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        print(message, flush=True)
        return
    tqdm.write(message)


class _PlainBar:
    """What this package uses of tqdm: iterate, update, set_postfix_str, set_description."""

    def __init__(
        self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", **_: Any
    ) -> None:
        self.iterable, self.total, self.desc = iterable, total, desc
        self.n, self.start, self.last, self.postfix = 0, time.monotonic(), 0.0, ""

    def __iter__(self) -> Any:
        for item in self.iterable or ():
            yield item
            self.update()
        self.close()

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.monotonic()
        if now - self.last >= 30 or self.n == self.total:
            self.last = now
            rate = self.n / max(now - self.start, 1e-9)
            eta = (self.total - self.n) / rate if self.total and rate > 0 else 0.0
            total = f"/{self.total}" if self.total else ""
            print(
                f"{self.desc}: {self.n}{total} ({rate:.2f}/s, ETA {eta:.0f} s) {self.postfix}",
                file=sys.stderr,
                flush=True,
            )

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        pass

    def __enter__(self) -> _PlainBar:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """transformers' own bars (saving shards, loading weights) would interleave with the
    run's bar; they are off while the block runs."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
