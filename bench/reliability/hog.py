"""A CPU hog: one separate process spinning on one core while a scenario runs, so the promises are tried on a
busy machine (production hosts often are). `with Hog() as hog: ...`; `hog.describe()` for the report.

The hog is always stopped when the block ends (normally, on an exception, on KeyboardInterrupt / cancellation);
if the suite itself dies without cleaning up (SIGKILL), the hog notices it was orphaned and exits within ~0.1 s.
It runs in its own session so a Ctrl-C at the terminal reaches the suite (which stops it), not the hog.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import TracebackType

# Spin; every ~million iterations check whether the parent (the suite) is still there.
_LOOP = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)


class Hog:
    """One busy-looping process (a core's worth of competing CPU) for the duration of a `with` block."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.wall_s = 0.0
        self.cpu_s: float | None = None  # the hog's own CPU time, read when it is reaped

    def start(self) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-c", _LOOP], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGKILL)  # a busy loop holds nothing worth a graceful stop (no-op if it is gone)
        try:
            _, _, usage = os.wait4(proc.pid, 0)  # reap it ourselves to read its CPU time
            self.cpu_s = usage.ru_utime + usage.ru_stime
            proc.returncode = -signal.SIGKILL
        except ChildProcessError:  # already reaped by poll() (it died on its own)
            proc.wait()
        self.wall_s = time.monotonic() - self.started

    def __enter__(self) -> Hog:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def describe(self) -> str:
        """'on (0.97 core)': the share of one core the hog actually got while the scenario ran."""
        if self.cpu_s is None or self.wall_s < 1.0:  # too short a run for the share to mean anything
            return "on"
        return f"on ({min(1.0, self.cpu_s / self.wall_s):.2f} core)"
