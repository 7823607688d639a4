"""Imported first by every script here: `import epochwatch.hook` unless PLAIN=1 (the truth
run). Either way, the RSS after the script's imports and at its exit is printed on stderr,
with the process' CPU seconds, so a plain run says what really happened."""

import atexit
import os
import resource
import sys

if os.environ.get("PLAIN") != "1":
    import epochwatch.hook  # noqa: F401


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Truth:
    first = 0.0


def _at_exit() -> None:
    use = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write(
        f"TRUTH rss first {_Truth.first:.0f} MiB, exit {_rss_mib():.0f} MiB, cpu {use.ru_utime + use.ru_stime:.1f} s\n"
    )


atexit.register(_at_exit)


def mark() -> None:
    """Call once the model is built: the RSS the growth is counted from."""
    _Truth.first = _rss_mib()
