"""The series every exporter charts (exporters/series.py), from epoch records as the hook writes them."""

from __future__ import annotations

from epochwatch.exporters.series import MIB, epoch_series


def test_an_epoch_gives_each_series_in_its_unit() -> None:
    rec = {
        "type": "epoch",
        "epoch": 3,
        "seconds": 2.5,
        "step_seconds": {"min": 0.01, "median": 0.02, "p90": 0.05, "max": 0.3},
        "input_wait_seconds": 0.4,
        "host": {"rss_bytes": 512 * MIB},
        "gpu": {
            "devices": [
                {"index": 0, "process_memory_bytes": 1024 * MIB, "memory_used_bytes": 3000 * MIB},
                {"index": 1, "memory_used_bytes": 256 * MIB},  # no per-process figure: the device's
            ]
        },
        "retraces": {"new": 2, "graph_build_seconds": 0.1},
        "overhead_seconds": 0.003,
    }
    assert epoch_series(rec) == {
        "host_rss_mib": 512.0,
        "gpu_memory_mib": 1280.0,
        "epoch_seconds": 2.5,
        "step_seconds": 0.02,
        "input_wait_seconds": 0.4,
        "retraces": 2.0,
        "overhead_seconds": 0.003,
    }


def test_what_a_record_lacks_or_garbles_is_left_out_not_zero() -> None:
    rec = {
        "epoch": 0,
        "seconds": float("nan"),
        "host": "?",
        "gpu": {"devices": "x"},
        "retraces": {"new": True},
    }
    assert epoch_series(rec) == {}
    assert epoch_series({"overhead_seconds": 0.0}) == {"overhead_seconds": 0.0}
