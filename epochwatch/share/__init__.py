"""Files that run the daemon on a host, shipped inside the package so a pip install has them.

These are the only copies (the systemd unit, its metrics drop-in, the sysusers file, an
example config, the Prometheus rules and the Grafana dashboard); `epochwatch service` prints
or installs them, and the tests and docs read them here.
"""

from __future__ import annotations

from pathlib import Path

SHARE = Path(__file__).resolve().parent

# What `epochwatch service print NAME` knows, and the file behind each name.
FILES: dict[str, str] = {
    "unit": "epochwatch.service",
    "metrics": "epochwatch-metrics.conf",
    "sysusers": "epochwatch.sysusers",
    "config": "daemon.toml",
    "alerts": "prometheus-alerts.yml",
    "dashboard": "grafana-dashboard.json",
}


def path(name: str) -> Path:
    """The shipped file for `name` (a key of FILES)."""
    return SHARE / FILES[name]
