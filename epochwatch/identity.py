"""Which distributed job a process belongs to, and its place in it, from the launcher's environment.

Launchers tell each worker who it is through environment variables: `TF_CONFIG`
(MultiWorkerMirroredStrategy, Kubeflow's TFJob), `RANK`/`WORLD_SIZE` (torchrun,
PyTorchJob), Horovod and MPI (`HOROVOD_RANK`, `OMPI_COMM_WORLD_RANK`, `PMI_RANK`), Slurm
(`SLURM_JOB_ID`, `SLURM_PROCID`, ...) and Kubernetes' downward API (`POD_NAME`,
`NODE_NAME`, ...). `identity()` reads them, and nothing else (no framework import, no
network), into the fingerprint's `distributed` block; docs/trace-format.md lists every
variable read.

The `job_id` is what ties the workers' traces together offline: the same on every worker
of one job and different between jobs, derived from the most specific id the launcher
gives (see `_job_id`). Run ids stay unique per worker. Everything here is untrusted text
(a trace may come from any host): values are bounded in length and stripped of control
characters, numbers are parsed strictly, and a malformed variable is ignored, never fatal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MAX_TEXT = 200
MAX_TF_CONFIG = 64 * 1024
MAX_NUMBER = 10_000_000
# TF_CONFIG roles that train (and so take part in the all-reduce), in TF's rank order.
_TRAINING_ROLES = ("chief", "master", "worker")


def clean_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """Printable text of at most `limit` characters, or None for nothing usable."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value)[: limit * 2] if ch.isprintable()).strip()[:limit]
    return text or None


def _number(value: Any) -> int | None:
    text = clean_text(value, 12)
    if text is None or not text.isdigit():
        return None
    n = int(text)
    return n if n <= MAX_NUMBER else None


def _first_number(env: Mapping[str, str], *names: str) -> int | None:
    return _first(*(_number(env.get(name)) for name in names))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def tf_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """Task and cluster shape from TF_CONFIG: {"task": {"type", "index"}, "cluster": {role: count},
    "rank", "world_size", "cluster_digest"}; None when absent or malformed."""
    raw = env.get("TF_CONFIG")
    if not raw or len(raw) > MAX_TF_CONFIG:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    cluster = config.get("cluster")
    task = config.get("task")
    out: dict[str, Any] = {}
    roles: dict[str, list[str]] = {}
    if isinstance(cluster, dict):
        for role, members in list(cluster.items())[:16]:
            name = clean_text(role, 32)
            if name is None or not isinstance(members, list):
                continue
            roles[name] = [clean_text(m) or "" for m in members[:100_000]]
        if roles:
            out["cluster"] = {role: len(members) for role, members in roles.items()}
            canonical = json.dumps(roles, sort_keys=True)
            out["cluster_digest"] = _digest(canonical)
    if isinstance(task, dict):
        task_type = clean_text(task.get("type"), 32)
        task_index = _number(task.get("index"))
        if task_type is not None and task_index is not None:
            out["task"] = {"type": task_type, "index": task_index}
            trainers = [r for r in _TRAINING_ROLES if r in roles]
            if task_type in trainers:
                before = sum(len(roles[r]) for r in trainers[: trainers.index(task_type)])
                out["rank"] = before + task_index
            if trainers:
                out["world_size"] = sum(len(roles[r]) for r in trainers)
    return out or None


def _block(env: Mapping[str, str], names: Mapping[str, str], numbers: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, var in names.items():
        value = _number(env.get(var)) if key in numbers else clean_text(env.get(var))
        if value is not None:
            out[key] = value
    return out


_SLURM = {
    "job_id": "SLURM_JOB_ID",
    "step_id": "SLURM_STEP_ID",
    "proc_id": "SLURM_PROCID",
    "local_id": "SLURM_LOCALID",
    "node_id": "SLURM_NODEID",
    "ntasks": "SLURM_NTASKS",
    "nnodes": "SLURM_JOB_NUM_NODES",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "job_name": "SLURM_JOB_NAME",
    "node": "SLURMD_NODENAME",
    "partition": "SLURM_JOB_PARTITION",
}
_SLURM_NUMBERS = frozenset(
    {"proc_id", "local_id", "node_id", "ntasks", "nnodes", "array_job_id", "array_task_id"}
)
_KUBERNETES = {
    "pod": "POD_NAME",
    "namespace": "POD_NAMESPACE",
    "node": "NODE_NAME",
    "pod_ip": "POD_IP",
    "pod_uid": "POD_UID",
    "completion_index": "JOB_COMPLETION_INDEX",
    "jobset": "JOBSET_NAME",
}
_TORCHRUN = {
    "master_addr": "MASTER_ADDR",
    "master_port": "MASTER_PORT",
    "run_id": "TORCHELASTIC_RUN_ID",
    "restart_count": "TORCHELASTIC_RESTART_COUNT",
    "group_rank": "GROUP_RANK",
}

_HOROVOD = {"rank": "HOROVOD_RANK", "size": "HOROVOD_SIZE", "local_rank": "HOROVOD_LOCAL_RANK"}


def _job_id(
    env: Mapping[str, str],
    slurm: dict[str, Any],
    torch: dict[str, Any],
    tf: dict[str, Any] | None,
    explicit: str | None,
) -> tuple[str, str] | None:
    """(job_id, where it came from), most specific first.

    An explicit id (EPOCHWATCH_JOB_ID, set by the user or a manifest) wins; then Slurm's job and step
    (unique per submission; every task of an `srun` step shares them); torchrun's
    rendezvous run id; MPI's job namespace; then the TF_CONFIG cluster (the same list of
    addresses on every worker); then torchrun's or Horovod's rendezvous address. The
    address-based ids repeat when a job is rerun on the same addresses: the analysis
    splits such reruns apart (analysis/jobs.py).
    """
    given = clean_text(explicit, 128)
    if given:
        return given, "EPOCHWATCH_JOB_ID"
    if "job_id" in slurm:
        step = slurm.get("step_id")
        return f"slurm-{slurm['job_id']}" + (f".{step}" if step else ""), "slurm"
    run_id = torch.get("run_id")
    if run_id and run_id != "none":
        return f"torchrun-{run_id}", "torchrun"
    namespace = clean_text(env.get("PMIX_NAMESPACE")) or clean_text(env.get("OMPI_MCA_ess_base_jobid"))
    if namespace:
        return f"mpi-{_digest(namespace)}", "mpi"
    if tf and "cluster_digest" in tf:
        return f"tf-{tf['cluster_digest']}", "tf_config"
    if "master_addr" in torch and "master_port" in torch:
        return f"torch-{_digest(torch['master_addr'], torch['master_port'])}", "torchrun"
    gloo_addr = clean_text(env.get("HOROVOD_GLOO_RENDEZVOUS_ADDR"))
    gloo_port = clean_text(env.get("HOROVOD_GLOO_RENDEZVOUS_PORT"))
    if gloo_addr and gloo_port:
        return f"horovod-{_digest(gloo_addr, gloo_port)}", "horovod"
    return None


def identity(env: Mapping[str, str], job_id: str | None = None) -> dict[str, Any] | None:
    """The fingerprint's `distributed` block, or None for a process no launcher placed in a job.

    `job_id`: an explicit job id (the recorder passes $EPOCHWATCH_JOB_ID), which wins over
    the launcher's.

    Keys (each only when known): job_id, job_source, rank, world_size, local_rank,
    local_world_size, worker (a readable name: "worker:1", "rank:3"), tf_config, slurm,
    torchrun, horovod, kubernetes.
    """
    tf = tf_config(env)
    blocks = _launcher_blocks(env)
    out: dict[str, Any] = {}
    job = _job_id(env, blocks["slurm"], blocks["torchrun"], tf, job_id)
    if job is not None:
        out["job_id"], out["job_source"] = job
    out.update(_place(env, tf, blocks))
    task = tf.get("task") if tf else None
    if task:
        out["worker"] = f"{task['type']}:{task['index']}"
    elif "rank" in out:
        out["worker"] = f"rank:{out['rank']}"
    if tf:
        out["tf_config"] = {k: v for k, v in tf.items() if k in ("task", "cluster")}
    out.update({key: block for key, block in blocks.items() if block})
    return out or None


def _launcher_blocks(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What each launcher (Slurm, torchrun, Horovod, Kubernetes) says of this process."""
    kube = _block(env, _KUBERNETES, frozenset({"completion_index"}))
    if env.get("KUBERNETES_SERVICE_HOST") and "pod" not in kube:
        pod = clean_text(env.get("HOSTNAME"))  # a pod's hostname is its name unless the spec sets one
        if pod:
            kube["pod"] = pod
    return {
        "slurm": _block(env, _SLURM, _SLURM_NUMBERS),
        "torchrun": _block(env, _TORCHRUN, frozenset({"restart_count", "group_rank"})),
        "horovod": _block(env, _HOROVOD, frozenset(_HOROVOD)),
        "kubernetes": kube,
    }


def _place(
    env: Mapping[str, str], tf: dict[str, Any] | None, blocks: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """rank, world_size, local_rank and local_world_size, each from the first launcher
    that gives it (torchrun's variables, TF_CONFIG, Horovod, MPI, Slurm, Kubernetes)."""
    tf = tf or {}
    slurm, horovod = blocks["slurm"], blocks["horovod"]
    place = {
        "rank": _first(
            _first_number(env, "RANK"),
            tf.get("rank"),
            horovod.get("rank"),
            _first_number(env, "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"),
            slurm.get("proc_id"),
            blocks["kubernetes"].get("completion_index"),
        ),
        "world_size": _first(
            _first_number(env, "WORLD_SIZE"),
            tf.get("world_size"),
            horovod.get("size"),
            _first_number(env, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"),
            slurm.get("ntasks"),
        ),
        "local_rank": _first_number(
            env, "LOCAL_RANK", "HOROVOD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"
        ),
        "local_world_size": _first_number(env, "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"),
    }
    return {k: v for k, v in place.items() if v is not None}


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
