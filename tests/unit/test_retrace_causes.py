"""What changed between two traces of a tf.function, argument by argument
(integrations/tf.py `explain_retrace`), on objects shaped as TF's trace types are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from epochwatch.integrations.tf import explain_retrace


@dataclass
class Literal:
    value: Any


@dataclass
class Tuple:
    components: tuple[Any, ...]


@dataclass
class List:
    """TF's List keeps its components in a Tuple."""

    components_tuple: Tuple


def _list(*components: Any) -> List:
    return List(Tuple(components))


class _Param:
    def __init__(self, type_constraint: Any) -> None:
        self.type_constraint = type_constraint


class _FunctionType:
    def __init__(self, **params: Any) -> None:
        self.parameters = {name: _Param(t) for name, t in params.items()}


def test_a_value_changed_inside_a_list_is_named_by_its_place() -> None:
    # `f([lr, 2])` with lr a Python float that changes: it read as the list's `type`.
    was = _FunctionType(xs=_list(Literal(0.1), Literal(2)))
    now = _FunctionType(xs=_list(Literal(0.09), Literal(2)))
    assert explain_retrace(was, now) == [
        {"arg": "xs[0]", "change": "value", "was": "float 0.1", "now": "float 0.09"}
    ]


def test_a_tuple_s_values_and_a_list_s_length() -> None:
    assert (
        explain_retrace(
            _FunctionType(t=Tuple((Literal(1), Literal(2)))), _FunctionType(t=Tuple((Literal(1), Literal(5))))
        )[0]["arg"]
        == "t[1]"
    )
    (cause,) = explain_retrace(
        _FunctionType(xs=_list(Literal(1))), _FunctionType(xs=_list(Literal(1), Literal(2)))
    )
    assert cause["arg"] == "xs" and cause["change"] == "structure", cause
