"""Daemon config: TOML on top of defaults, flags on top of that, loud about mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from epochwatch.daemon.config import ConfigError, DaemonConfig, differences, load_config, parse_config


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(None, socket=str(tmp_path / "s.sock"), state_dir=str(tmp_path))
    assert cfg.socket == str(tmp_path / "s.sock") and cfg.traces_dir == tmp_path / "traces"
    assert cfg.sampling.interval_seconds == 1.0 and cfg.limits.max_line_bytes == 1 << 20
    assert cfg.socket_mode == 0o666 and cfg.trace_mode == 0o640


def test_file_values_and_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(
        'socket = "/run/x.sock"\nstate_dir = "/srv/ew"\nsocket_mode = "0660"\nsocket_group = "train"\n'
        "[sampling]\ninterval_seconds = 2\nwindow_seconds = 30.0\n[limits]\nmax_runs_per_uid = 5\n"
    )
    cfg = load_config(str(path), state_dir="/override")
    assert cfg.socket == "/run/x.sock" and cfg.state_dir == "/override"
    assert cfg.socket_mode == 0o660 and cfg.socket_group == "train"
    assert cfg.sampling.interval_seconds == 2.0 and cfg.sampling.window_seconds == 30.0
    assert cfg.limits.max_runs_per_uid == 5 and cfg.limits.max_connections_per_uid == 256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sokcet = 1", "unknown setting 'sokcet'"),
        ("[sampling]\nintervall_seconds = 1.0", "unknown setting 'sampling.intervall_seconds'"),
        ("[sampling]\ninterval_seconds = -1", "expected a positive number"),
        ("[limits]\nmax_runs_per_uid = 'many'", "expected an integer"),
        ("online_detection = 1", "expected true or false"),
        ('trace_mode = "rw-r-----"', "octal mode"),
        ("sampling = 3", "expected a [sampling] table"),
        ('log_level = "chatty"', "log_level must be"),
        ("this is = not toml =", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "d.toml")
    assert message in str(info.value) and str(info.value).startswith("d.toml: ")
    assert "\n" not in str(info.value).strip()


def test_unreadable_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.toml"))


def test_differences_name_each_changed_setting() -> None:
    old = DaemonConfig()
    new = parse_config("[sampling]\ninterval_seconds = 0.5\n[limits]\nmax_runs_per_uid = 3\n")
    assert differences(old, new) == [
        "sampling.interval_seconds 1.0 -> 0.5",
        "limits.max_runs_per_uid 64 -> 3",
    ]
    assert differences(old, DaemonConfig()) == []
