"""Checks on what the child ran on: package versions and the machine.

- `version_mismatch`: the file or the parent says another Keras/TF than this run has.
- `environment_changed`: GPU model, driver, CPU count, Python.
"""

from __future__ import annotations

import os
from typing import Any

from epochwatch.analysis.findings import Finding, severity_rank
from epochwatch.analysis.restore.resume import Resume


def _version(text: Any) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def _version_severity(a: tuple[int, ...], b: tuple[int, ...]) -> str | None:
    if a[:1] != b[:1]:
        return "critical"
    if a[:2] != b[:2]:
        return "warning"
    if a != b:
        return "info"
    return None


def check_versions(r: Resume) -> list[Finding]:
    env = (r.run.start or {}).get("env") or {}
    now = env.get("packages") or {}
    diffs: list[dict[str, Any]] = []
    written = r.restore.get("written_with") or {}
    for pkg, key in (("keras", "keras"), ("tensorflow", "tensorflow")):
        file_v, run_v = _version(written.get(key)), _version(now.get(pkg))
        if file_v and run_v:
            sev = _version_severity(file_v, run_v)
            if sev:
                diffs.append(_diff(pkg, "file", written[key], now[pkg], sev))
    backend = written.get("backend")
    if isinstance(backend, str) and now.get("tensorflow") and backend not in ("tensorflow", "tf"):
        diffs.append(_diff("backend", "file", backend, "tensorflow", "warning"))
    if r.by_hash and r.parent is not None:
        before = (((r.parent.start or {}).get("env") or {}).get("packages")) or {}
        listed = {d["package"] for d in diffs}
        for pkg in ("keras", "tensorflow", "h5py", "torch", "jax"):
            if pkg in listed:
                continue
            pv, cv = _version(before.get(pkg)), _version(now.get(pkg))
            if pv and cv:
                sev = _version_severity(pv, cv)
                if sev:
                    diffs.append(_diff(pkg, "parent run", before[pkg], now[pkg], sev))
    if not diffs:
        return []
    severity = max((d.pop("severity") for d in diffs), key=severity_rank)
    names = ", ".join(f"{d['package']} {d['written_with']} -> {d['loaded_with']}" for d in diffs)
    return [
        Finding(
            "version_mismatch",
            severity,
            (
                f"Ran with other versions than run {r.link.parent if r.link else '?'} ({names})"
                if r.compared
                else f"{os.path.basename(r.target)} was written with other versions than this run loads it "
                f"with ({names})"
            ),
            {"path": r.target, "differences": diffs, **r.parent_evidence()},
            "Loading across versions can silently change behaviour (renamed or re-ordered variables, "
            "skipped optimizer state, different defaults). Resume with the versions the checkpoint was "
            "written with (pin them, e.g. `pip install keras==<version>`), or if you must upgrade, load, "
            "check that the loss on a fixed batch matches, and save again with the new versions.",
            r.target,
            r.first_epoch,
        )
    ]


def gpu_names(env: dict[str, Any]) -> list[str]:
    return sorted(str(g.get("name")) for g in env.get("gpus") or [] if isinstance(g, dict))


def check_environment(r: Resume) -> list[Finding]:
    if not r.by_hash or r.parent is None:
        return []
    pe = (r.parent.start or {}).get("env") or {}
    ce = (r.run.start or {}).get("env") or {}
    if not pe or not ce:
        return []
    changes: list[dict[str, Any]] = []
    severity = "info"
    pg, cg = gpu_names(pe), gpu_names(ce)
    if pg != cg:
        changes.append({"what": "gpus", "parent": pg, "child": cg})
        severity = "warning"
    for key in ("driver", "python"):
        if key in pe and key in ce and pe[key] != ce[key]:
            changes.append({"what": key, "parent": pe[key], "child": ce[key]})
    for key in ("cpu_count", "cpu_affinity"):
        a, b = pe.get(key), ce.get(key)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            changes.append({"what": key, "parent": a, "child": b})
            if b * 2 <= a:
                severity = "warning"
    pb, cb = pe.get("tf_build") or {}, ce.get("tf_build") or {}
    for key in ("cuda_version", "cudnn_version"):
        if key in pb and key in cb and pb[key] != cb[key]:
            changes.append({"what": f"tf_build.{key}", "parent": pb[key], "child": cb[key]})
    if not changes:
        return []
    if pe.get("hostname") != ce.get("hostname"):
        changes.append({"what": "hostname", "parent": pe.get("hostname"), "child": ce.get("hostname")})
    names = ", ".join(c["what"] for c in changes if c["what"] != "hostname")
    return [
        Finding(
            "environment_changed",
            severity,
            f"{'Ran' if r.compared else 'Resumed'} on a different machine setup than run "
            f"{r.link.parent if r.link else '?'} ({names})",
            {"changes": changes, **r.parent_evidence()},
            "Epoch times and numerics are only comparable on the same hardware and software. If the "
            "resumed run is slower or its loss differs, check these first; pin the job to the same GPU "
            "type and driver (node selector / partition), and the same CPU allocation.",
            r.target,
            r.first_epoch,
        )
    ]


def _diff(package: str, source: str, written_with: Any, loaded_with: Any, severity: str) -> dict[str, Any]:
    """One row of a version_mismatch's `changes` (severity is popped once the worst is known)."""
    return {
        "package": package,
        "source": source,
        "written_with": written_with,
        "loaded_with": loaded_with,
        "severity": severity,
    }
