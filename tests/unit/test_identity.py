"""The fingerprint's `distributed` block from what launchers put in the environment."""

from __future__ import annotations

import json

from epochwatch.identity import identity
from epochwatch.recorder import Recorder


def _tf_config(index: int, task_type: str = "worker", chief: bool = False) -> str:
    cluster: dict[str, list[str]] = {
        "worker": ["w0.svc:2222", "w1.svc:2222", "w2.svc:2222"],
        "ps": ["ps0:2222"],
    }
    if chief:
        cluster["chief"] = ["chief0.svc:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_nothing_from_a_plain_environment() -> None:
    assert identity({"HOME": "/root", "PATH": "/usr/bin"}) is None


def test_tf_config_gives_task_rank_world_and_a_job_id_shared_by_the_workers() -> None:
    ids = [identity({"TF_CONFIG": _tf_config(i, chief=True)}) for i in range(3)]
    assert all(d is not None for d in ids)
    first = ids[0]
    assert first is not None
    assert first["job_source"] == "tf_config"
    assert {d["job_id"] for d in ids if d} == {first["job_id"]}
    # chief first, then the workers: worker:i has rank i + 1; ps does not train
    assert [d["rank"] for d in ids if d] == [1, 2, 3]
    assert first["world_size"] == 4
    assert first["worker"] == "worker:0"
    assert first["tf_config"] == {
        "cluster": {"worker": 3, "ps": 1, "chief": 1},
        "task": {"type": "worker", "index": 0},
    }
    # another cluster is another job
    other = identity(
        {
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
            )
        }
    )
    assert other is not None and other["job_id"] != first["job_id"]


def test_malformed_tf_config_is_ignored() -> None:
    for raw in ("{not json", "[1, 2]", json.dumps({"task": {"type": "worker", "index": "x"}}), "x" * 100_000):
        assert identity({"TF_CONFIG": raw}) is None


def test_slurm_job_step_and_task() -> None:
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURMD_NODENAME": "gpu-node-07",
        "SLURM_ARRAY_JOB_ID": "4240",
        "SLURM_ARRAY_TASK_ID": "2",
    }
    d = identity(env)
    assert d is not None
    assert d["job_id"] == "slurm-4242.0" and d["job_source"] == "slurm"
    assert (d["rank"], d["world_size"], d["local_rank"], d["worker"]) == (3, 8, 1, "rank:3")
    assert d["slurm"]["node"] == "gpu-node-07"
    assert d["slurm"]["array_task_id"] == 2 and d["slurm"]["nnodes"] == 2


def test_torchrun_rank_world_and_rendezvous() -> None:
    base = {"MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    a = identity({**base, "RANK": "0", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "abc123"})
    b = identity({**base, "RANK": "3", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "abc123"})
    assert a is not None and b is not None
    assert a["job_id"] == b["job_id"] == "torchrun-abc123"
    assert (b["rank"], b["world_size"], b["local_rank"], b["local_world_size"]) == (3, 4, 1, 2)
    # no rendezvous id: the master address ties the workers together
    c = identity({**base, "RANK": "1"})
    d = identity({**base, "RANK": "2"})
    assert c is not None and d is not None
    assert c["job_id"] == d["job_id"] and c["job_id"].startswith("torch-")
    assert c["job_id"] != identity({**base, "MASTER_PORT": "29501", "RANK": "1"})["job_id"]  # type: ignore[index]


def test_slurm_wins_over_torchrun_inside_it_and_explicit_job_id_wins_over_all() -> None:
    env = {"SLURM_JOB_ID": "77", "RANK": "5", "WORLD_SIZE": "8", "MASTER_ADDR": "n1", "MASTER_PORT": "1"}
    d = identity(env)
    assert d is not None and d["job_id"] == "slurm-77" and d["rank"] == 5 and d["world_size"] == 8
    d = identity(env, job_id="resnet-sweep-3")
    assert d is not None and d["job_id"] == "resnet-sweep-3" and d["job_source"] == "EPOCHWATCH_JOB_ID"


def test_horovod_and_mpi_ranks() -> None:
    d = identity(
        {
            "OMPI_COMM_WORLD_RANK": "2",
            "OMPI_COMM_WORLD_SIZE": "4",
            "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "PMIX_NAMESPACE": "prterun-h-1@1",
        }
    )
    assert d is not None and (d["rank"], d["world_size"], d["local_rank"]) == (2, 4, 0)
    assert d["job_source"] == "mpi"
    d = identity(
        {
            "HOROVOD_RANK": "1",
            "HOROVOD_SIZE": "2",
            "HOROVOD_LOCAL_RANK": "1",
            "HOROVOD_GLOO_RENDEZVOUS_ADDR": "h",
            "HOROVOD_GLOO_RENDEZVOUS_PORT": "9",
        }
    )
    assert d is not None and d["horovod"] == {"rank": 1, "size": 2, "local_rank": 1}
    assert d["rank"] == 1 and d["job_source"] == "horovod"


def test_kubernetes_downward_api_and_hostname_fallback() -> None:
    env = {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "POD_NAME": "train-worker-1",
        "POD_NAMESPACE": "ml",
        "NODE_NAME": "gpu-node-3",
        "JOB_COMPLETION_INDEX": "1",
    }
    d = identity(env)
    assert d is not None
    assert d["kubernetes"] == {
        "pod": "train-worker-1",
        "namespace": "ml",
        "node": "gpu-node-3",
        "completion_index": 1,
    }
    assert d["rank"] == 1
    d = identity({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "HOSTNAME": "train-worker-0"})
    assert d is not None and d["kubernetes"] == {"pod": "train-worker-0"}


def test_hostile_values_are_bounded_and_cleaned() -> None:
    d = identity(
        {
            "SLURM_JOB_ID": "12\x1b[31m\n" + "9" * 1000,
            "SLURM_PROCID": "-1",
            "RANK": "99999999999",
            "POD_NAME": "a\x00b",
        }
    )
    assert d is not None
    assert len(d["job_id"]) <= 220 and "\x1b" not in d["job_id"] and "\n" not in d["job_id"]
    assert "rank" not in d  # negative and absurd numbers are not ranks
    assert d["kubernetes"]["pod"] == "ab"


def test_the_recorders_fingerprint_carries_the_block_and_the_explicit_job_id() -> None:
    env = {"TF_CONFIG": _tf_config(2), "POD_NAME": "w2", "KUBERNETES_SERVICE_HOST": "x"}
    block = Recorder(environ=env).setup.fingerprint()["distributed"]
    assert block["worker"] == "worker:2" and block["rank"] == 2 and block["kubernetes"]["pod"] == "w2"
    assert block["job_source"] == "tf_config"
    block = Recorder(environ={**env, "EPOCHWATCH_JOB_ID": "sweep-3"}).setup.fingerprint()["distributed"]
    assert block["job_id"] == "sweep-3" and block["job_source"] == "EPOCHWATCH_JOB_ID"
    assert "distributed" not in Recorder(environ={"HOME": "/root"}).setup.fingerprint()
