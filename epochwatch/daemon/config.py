"""Daemon settings: defaults, a TOML file on top, command-line flags on top of that.

Every setting has one name in the file, documented in docs/daemon.md and in the example
config (epochwatch/share/daemon.toml, `epochwatch service print config`). Unknown keys are
an error, so a typo never silently does nothing. SIGHUP reloads the file; settings that only
take effect at start (socket, state directory) are reported and kept.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

from epochwatch.envvars import DEFAULT_SOCKET
from epochwatch.trace.protocol import MAX_LINE_BYTES

DEFAULT_STATE_DIR = "/var/lib/epochwatch"
DEFAULT_CONFIG = "/etc/epochwatch/daemon.toml"


class ConfigError(Exception):
    """A config file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Sampling:
    # Seconds between samples of each attached process (RSS, CPU, GPU, ...).
    interval_seconds: float = 1.0
    # Every sample is written for this long after a run attaches ...
    full_rate_seconds: float = 300.0
    # ... then one summary `sample` per window (last values plus min/max over the window) ...
    window_seconds: float = 10.0
    # ... widening to this window once the run is older than `long_after_seconds`.
    long_window_seconds: float = 60.0
    long_after_seconds: float = 3600.0
    # How often the whole host is scanned for the busiest other processes.
    contention_interval_seconds: float = 5.0
    contention_top: int = 3


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1024
    max_connections_per_uid: int = 256
    max_runs_per_uid: int = 64
    # Trace files a uid may have in traces/ (0: no limit); past it, its new runs are
    # refused (their hooks write embedded traces) until some are removed.
    max_traces_per_uid: int = 10_000
    # Token bucket per uid over every message received; over it, the daemon stops
    # reading that uid's connections until the bucket refills (back-pressure, not loss).
    messages_per_second_per_uid: float = 500.0
    message_burst_per_uid: int = 5000
    max_line_bytes: int = MAX_LINE_BYTES
    # A connection that has not said hello by then is dropped.
    hello_timeout_seconds: float = 10.0
    # Watched directories per run (from the hook's `watch` records).
    max_watches_per_run: int = 32
    # Bytes, not only messages (docs/security.md): a token bucket per uid over the bytes
    # received (over it, reading slows like the message rate) ...
    bytes_per_second_per_uid: float = 8.0 * (1 << 20)
    byte_burst_per_uid: int = 64 << 20
    # ... and what the daemon writes: a run's trace, the traces of a uid's attached runs
    # together (0: no limit), and free space it leaves on the traces' file system.
    max_trace_bytes_per_run: int = 1 << 30
    max_trace_bytes_per_uid: int = 4 << 30
    min_free_bytes: int = 512 << 20


@dataclass(frozen=True)
class DaemonConfig:
    socket: str = DEFAULT_SOCKET
    state_dir: str = DEFAULT_STATE_DIR
    # Anyone may connect by default: identity comes from SO_PEERCRED, and each user only
    # ever sees and writes their own runs. Tighten with a group, e.g. "0660" + socket_group.
    socket_mode: int = 0o666
    socket_group: str | None = None
    trace_mode: int = 0o640
    online_detection: bool = True
    log_level: str = "info"
    # Prometheus metrics over HTTP (docs/metrics.md): 0 is off. Loopback unless told otherwise:
    # the metrics name runs, scripts and users, and without metrics_token_file anyone may scrape.
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    # A file holding a bearer token (docs/security.md): scrapes must send
    # `Authorization: Bearer <token>` (Prometheus: `authorization.credentials_file`).
    metrics_token_file: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    limits: Limits = field(default_factory=Limits)

    @property
    def traces_dir(self) -> Path:
        return Path(self.state_dir) / "traces"

    @property
    def sessions_dir(self) -> Path:
        return Path(self.state_dir) / "sessions"


RESTART_ONLY = (
    "socket",
    "state_dir",
    "socket_mode",
    "socket_group",
    "metrics_port",
    "metrics_address",
    "metrics_token_file",
)
_SECTIONS: dict[str, type] = {"sampling": Sampling, "limits": Limits}
_MODES = ("socket_mode", "trace_mode")


def _coerce(name: str, value: Any, default: Any) -> Any:
    if name in _MODES and isinstance(value, str):
        try:
            return int(value, 8)
        except ValueError:
            raise ConfigError(f'{name}: expected an octal mode like "0640", got {value!r}') from None
    if default is None or isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name}: expected a positive number, got {value!r}")
        return float(value)
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    defaults = cls()
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown setting {name!r}")
        default = getattr(defaults, key)
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a [{key}] table")
            kwargs[key] = _build(_SECTIONS[key], value, f"{key}.")
        else:
            kwargs[key] = _coerce(name, value, default)
    return cls(**kwargs)


def parse_config(text: str, source: str = "<config>") -> DaemonConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        cfg: DaemonConfig = _build(DaemonConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: log_level must be debug, info, warning or error")
    why = metrics_problem(cfg.metrics_port, cfg.metrics_address)
    if why:
        raise ConfigError(f"{source}: {why}")
    return cfg


def metrics_problem(port: int, address: str) -> str | None:
    """Why a metrics port or address cannot be used, or None (whether it is free is seen at bind)."""
    if not 0 <= port <= 65535:
        return f"metrics_port must be 0 (off) to 65535, got {port}"
    if not address.strip():
        return "metrics_address must not be empty (0.0.0.0 listens on every interface)"
    return None


def load_config(
    path: str | None,
    *,
    socket: str | None = None,
    state_dir: str | None = None,
    metrics_port: int | None = None,
    metrics_address: str | None = None,
) -> DaemonConfig:
    """The config from `path` (or the default file when it exists), with flags on top.

    An explicit path that cannot be read is an error; the default path may be absent.
    A flag given as None is not given; `metrics_port=0` is given, and turns metrics off.
    """
    cfg = DaemonConfig()
    candidate = path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    if candidate:
        try:
            text = Path(candidate).read_text()
        except OSError as exc:
            raise ConfigError(f"{candidate}: cannot read ({exc.strerror or exc})") from None
        cfg = parse_config(text, candidate)
    paths = {"socket": socket, "state_dir": state_dir}
    metrics = {"metrics_port": metrics_port, "metrics_address": metrics_address}
    overrides: dict[str, Any] = {k: v for k, v in paths.items() if v}
    overrides |= {k: v for k, v in metrics.items() if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    if metrics.keys() & overrides and (why := metrics_problem(cfg.metrics_port, cfg.metrics_address)):
        raise ConfigError(why)
    return cfg


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def differences(old: DaemonConfig, new: DaemonConfig) -> list[str]:
    """`name old -> new` for every setting that changed, for the reload log line."""
    a, b = flatten(old), flatten(new)
    return [f"{k} {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]
