"""The input fingerprint: statistics of the first batches, and what is skipped and why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from epochwatch.integrations.inputs import MAX_ELEMENTS, array_stats, describe_inputs


def test_arrays_get_per_feature_statistics_of_the_first_batches() -> None:
    x = np.concatenate([np.zeros((64, 2)), np.full((1000, 2), 100.0)]).astype("float32")
    x[:64, 1] = np.arange(64)
    y = np.ones((1064, 1), dtype="int64")
    out = describe_inputs(x, y, batch_size=16)
    assert out is not None
    assert out["source"] == "arrays" and out["rows"] == 64 and out["batches"] == 4
    stats = out["inputs"]["x"]
    assert stats["dtype"] == "float32" and stats["shape"] == [2] and stats["per"] == "feature"
    assert stats["mean"] == [0.0, 31.5] and stats["min"] == [0.0, 0.0] and stats["max"] == [0.0, 63.0]
    assert stats["std"][1] == pytest.approx(np.arange(64).std(), rel=1e-5)
    assert out["targets"]["y"]["mean"] == [1.0]
    assert out["cost_seconds"] >= 0


def test_dicts_and_lists_of_arrays() -> None:
    a, b = np.zeros((10, 3)), np.ones((10,))
    assert set(describe_inputs({"a": a, "b": b})["inputs"]) == {"a", "b"}  # type: ignore[index]
    assert set(describe_inputs([a, b])["inputs"]) == {"0", "1"}  # type: ignore[index]


def test_wide_rows_fall_back_to_channels_then_to_one_set() -> None:
    images = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    s = array_stats(images)
    assert s["per"] == "channel" and len(s["mean"]) == 3
    wide = np.zeros((4, 1000))
    assert array_stats(wide)["per"] == "all" and array_stats(wide)["mean"] == [0.0]


def test_huge_rows_are_bounded_by_elements() -> None:
    x = np.zeros((64, MAX_ELEMENTS // 4), dtype="float32")
    out = describe_inputs(x, batch_size=32)
    assert out is not None and out["inputs"]["x"]["rows"] == 4


def test_nonfinite_values_are_counted_not_propagated() -> None:
    x = np.array([[1.0, np.nan], [3.0, np.inf], [5.0, np.nan]])
    s = array_stats(x)
    assert s["mean"][0] == 3.0 and s["nonfinite"] == 3
    assert np.isnan(s["mean"][1])


def test_strings_are_described_without_statistics() -> None:
    s = array_stats(np.array(["a", "b"]))
    assert s["per"] == "none" and "mean" not in s


def test_generators_are_skipped_with_a_reason() -> None:
    def gen() -> Any:
        yield np.zeros((2, 2)), np.zeros((2,))

    g = gen()
    out = describe_inputs(g)
    assert out is not None and out["source"] == "generator" and "consuming" in out["skipped"]
    assert next(g)[0].shape == (2, 2)  # nothing was consumed


def test_py_dataset_is_skipped() -> None:
    class PyDataset:  # the name is what matters: keras.utils.PyDataset and subclasses
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> Any:
            raise AssertionError("must not be read")

    class MyData(PyDataset):
        pass

    out = describe_inputs(MyData())
    assert out is not None and out["source"] == "MyData" and "skipped" in out


def test_dataset_like_reads_a_bounded_number_of_batches() -> None:
    class Tensor:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def numpy(self) -> np.ndarray:
            return self.a

    class _TensorSliceDataset:  # tf.data's class name: an in-memory source
        element_spec = ("x", "y")
        taken: int | None = None

        def _inputs(self) -> list[Any]:
            return []

        def take(self, n: int) -> list[tuple[Tensor, Tensor]]:
            _TensorSliceDataset.taken = n
            return [(Tensor(np.full((4, 2), float(i))), Tensor(np.zeros((4, 1)))) for i in range(n)]

    Dataset = _TensorSliceDataset
    out = describe_inputs(Dataset())
    assert out is not None and Dataset.taken == 2
    assert out["source"] == "dataset" and out["batches"] == 2 and out["rows"] == 8
    assert out["inputs"]["x"]["mean"] == [0.5, 0.5] and "targets" in out
    assert "once more" in out["note"]


def test_none_is_nothing() -> None:
    assert describe_inputs(None) is None


def _pipeline(*names: str) -> Any:
    """A fake tf.data pipeline: each node named as tf.data names its class, the first the
    dataset fit gets, each the input of the one before; `take` counts what it was asked."""
    node: Any = None
    for name in reversed(names):
        upstream = [] if node is None else [node]
        node = type(name, (), {"element_spec": (), "_inputs": lambda self, up=upstream: up})()
    taken: list[int] = []
    node.take = lambda n: taken.append(n) or []
    node.taken = taken
    return node


@pytest.mark.parametrize(
    ("names", "why"),
    [
        # from_generator(lambda: gen): a second iterator pulls from the same generator
        (("_BatchDataset", "_FlatMapDataset", "_TensorDataset"), "FlatMapDataset"),
        # cache(filename): a partial read writes a cache file TF then discards
        (("_BatchDataset", "CacheDataset", "_ParallelMapDataset", "_TensorSliceDataset"), "CacheDataset"),
        # interleave over files: its function may read anything
        (("_BatchDataset", "_InterleaveDataset", "_TensorSliceDataset"), "InterleaveDataset"),
        # shuffle(N) after a decoding map: a read-ahead fills the whole buffer through the map
        (("_BatchDataset", "_ShuffleDataset", "_MapDataset", "_TensorSliceDataset"), "shuffle buffer"),
        (("_BatchDataset", "_ShuffleDataset", "TFRecordDatasetV2", "_TensorSliceDataset"), "shuffle buffer"),
    ],
)
def test_a_pipeline_a_second_read_could_change_or_rerun_is_not_read(names: tuple[str, ...], why: str) -> None:
    ds = _pipeline(*names)
    out = describe_inputs(ds)
    assert out is not None and ds.taken == [] and why in out["skipped"], out


@pytest.mark.parametrize(
    "names",
    [
        ("_PrefetchDataset", "_BatchDataset", "_ShuffleDataset", "_TensorSliceDataset"),
        ("_BatchDataset", "_ParallelMapDataset", "_FilterDataset", "_TensorSliceDataset"),
        ("_BatchDataset", "_MapDataset", "TFRecordDatasetV2", "_TensorSliceDataset"),
        ("_ZipDataset", "_BatchDataset", "_TensorSliceDataset"),  # enumerate's zip
    ],
)
def test_a_pipeline_that_replays_cheaply_is_read(names: tuple[str, ...]) -> None:
    ds = _pipeline(*names)
    describe_inputs(ds)
    assert ds.taken == [2]


def test_a_pipeline_that_cannot_be_walked_is_not_read() -> None:
    class Odd:
        element_spec = ()

        def take(self, n: int) -> list[Any]:
            raise AssertionError("read")

    out = describe_inputs(Odd())
    assert out is not None and out["skipped"].startswith("not read ahead")
