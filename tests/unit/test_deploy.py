"""deploy/: the Kubernetes manifests validate against the Kubernetes API schema, the daemon, status
and run commands they (and the Containerfiles) run parse with epochwatch's own CLI, and they run
the images docs/clusters.md builds (with the wheel inside) and pushes.

Schema validation uses kubernetes-validate (offline, bundled schemas; the `dev` extra); no
cluster, container engine or image build runs here (docs/clusters.md says what was not run).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from epochwatch.cli import build_parser
from tests.support import REPO

DEPLOY = REPO / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.30.0"  # the oldest release still commonly run; the manifests use nothing newer


def _documents(path: Path) -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate (the dev extra)")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_are_manifests() -> None:
    assert {p.name for p in MANIFESTS} >= {"daemonset.yaml", "worker-job.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')"
    )
    for doc in _documents(path):
        kv.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError with the path in the document


def test_a_broken_manifest_is_caught() -> None:
    """The validator is not a rubber stamp: a typo in a field name fails strict validation."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    (ds,) = [d for d in _documents(DEPLOY / "kubernetes" / "daemonset.yaml") if d["kind"] == "DaemonSet"]
    broken = json.loads(json.dumps(ds))
    broken["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSION, strict=True)


def _daemonset() -> dict[str, Any]:
    (ds,) = [d for d in _documents(DEPLOY / "kubernetes" / "daemonset.yaml") if d["kind"] == "DaemonSet"]
    return ds


def test_daemonset_runs_what_the_image_runs_and_shares_the_socket_with_workers() -> None:
    ds = _daemonset()
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    (container,) = pod["containers"]
    args = build_parser().parse_args(["daemon", *container["args"]])
    assert args.socket == "/run/epochwatch/epochwatch.sock" and args.state_dir == "/var/lib/epochwatch"
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (
        annotations["prometheus.io/port"] == args.metrics_port == str(container["ports"][0]["containerPort"])
    )
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["epochwatch", "status"]
    assert build_parser().parse_args(probe[1:]).socket == args.socket
    host_dirs = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert host_dirs[mounts["/run/epochwatch"]] == "/run/epochwatch"
    # the Containerfile's default command is the same daemon invocation
    containerfile = (DEPLOY / "Containerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*?\])", containerfile, re.S | re.M).group(1).replace("\\\n", ""))  # type: ignore[union-attr]
    assert cmd == container["args"]


def test_worker_job_reaches_the_socket_and_names_itself() -> None:
    (job,) = _documents(DEPLOY / "kubernetes" / "worker-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EPOCHWATCH_SOCKET"]["value"] == "/run/epochwatch/epochwatch.sock"
    # the downward-API names epochwatch.identity reads
    assert {"POD_NAME", "POD_NAMESPACE", "NODE_NAME", "POD_UID", "EPOCHWATCH_JOB_ID"} <= set(env)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/run/epochwatch"
    assert (
        volumes[mount["name"]]["hostPath"]["path"]
        == _daemonset()["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"]
    )


def _image(path: Path, kind: str) -> str:
    (doc,) = [d for d in _documents(path) if d["kind"] == kind]
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return str(container["image"])


def _built_images() -> dict[str, str]:
    """`podman build -t IMAGE -f deploy/FILE .` lines of docs/clusters.md: {IMAGE: FILE}."""
    text = (REPO / "docs" / "clusters.md").read_text()
    return dict(re.findall(r"^podman build -t (\S+) -f deploy/(\S+) \.", text, re.M))


def test_the_manifests_run_the_images_the_docs_build_and_push() -> None:
    """Issue 27: the worker Job ran the stock TensorFlow image (no epochwatch), and the DaemonSet
    pulled an image the docs never pushed."""
    from epochwatch import __version__

    daemon = _image(DEPLOY / "kubernetes" / "daemonset.yaml", "DaemonSet")
    worker = _image(DEPLOY / "kubernetes" / "worker-job.yaml", "Job")
    built = _built_images()
    assert built.get(daemon) == "Containerfile" and built.get(worker) == "Containerfile.worker", built
    docs = (REPO / "docs" / "clusters.md").read_text()
    for image in (daemon, worker):
        assert image.endswith(f":{__version__}"), (image, __version__)
        assert re.search(rf"^podman push {re.escape(image)}$", docs, re.M), image


def _containerfile(name: str) -> str:
    return (DEPLOY / name).read_text()


@pytest.mark.parametrize("name", ["Containerfile", "Containerfile.worker"])
def test_containerfiles_build_the_wheel_from_files_that_exist(name: str) -> None:
    text = _containerfile(name)
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (REPO / item).exists(), f"{name} copies {item}, which is not in the repository"
    copied = {item for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M) for item in source.split()}
    # what hatch needs to build the wheel: the metadata, the readme, the license file, the code
    assert {"pyproject.toml", "README.md", "LICENSE", "epochwatch", "hooks"} <= copied, copied
    assert re.search(r"pip wheel .*--wheel-dir /wheels \.$", text, re.M)
    assert re.search(r"pip install .*/wheels/\*\.whl", text)


def test_the_worker_image_is_tensorflow_with_epochwatch_and_runs_the_hook() -> None:
    text = _containerfile("Containerfile.worker")
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases[-1].startswith("docker.io/tensorflow/tensorflow:"), bases
    # checked while building: the entry point and the hook import next to TensorFlow
    assert "epochwatch --version" in text and "import epochwatch.hook, tensorflow" in text
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry[0] == "epochwatch" and build_parser().parse_args([*entry[1:], *cmd]).command == "run"
    (job,) = _documents(DEPLOY / "kubernetes" / "worker-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "epochwatch" and build_parser().parse_args(command[1:]).command == "run"
