"""Send Ctrl-C to a long call in a child process and check that it stops promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Put first in a child script: a parent that ignores SIGINT (a background job) passes that
#: on, and Python then installs no KeyboardInterrupt handler.
RESTORE_HANDLER = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"


def assert_sigint_stops(script: str, within: float = 2.0) -> None:
    """Run ``script`` (which prints "ready" before its long call and "finished" after it),
    send SIGINT a second after "ready", and require a KeyboardInterrupt within ``within`` s."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", RESTORE_HANDLER + script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().startswith("ready")  # compiled and warm
        time.sleep(1.0)  # inside the long call, which takes several seconds
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        waited = time.perf_counter() - sent
    finally:
        proc.kill()
        proc.wait()
    assert "finished" not in out, out
    assert "KeyboardInterrupt" in err, err
    assert waited < within, f"took {waited:.1f} s to stop"
