"""What changed between two traces of a tf.function, argument by argument
(integrations/tf.py `explain_retrace`), on objects shaped as TF's trace types are."""

from __future__ import annotations

from typing import Any

from epochwatch.integrations.tf import explain_retrace


class Literal:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Literal) and other.value == self.value

    def __repr__(self) -> str:
        return f"Literal[{self.value!r}]"


class Tuple:
    def __init__(self, *components: Any) -> None:
        self.components = components

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tuple) and other.components == self.components

    def __repr__(self) -> str:
        return f"Tuple{list(self.components)!r}"


class List:
    """TF's List keeps its components in a Tuple."""

    def __init__(self, *components: Any) -> None:
        self.components_tuple = Tuple(*components)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, List) and other.components_tuple == self.components_tuple

    def __repr__(self) -> str:
        return f"List{list(self.components_tuple.components)!r}"


class _Param:
    def __init__(self, type_constraint: Any) -> None:
        self.type_constraint = type_constraint


class _FunctionType:
    def __init__(self, **params: Any) -> None:
        self.parameters = {name: _Param(t) for name, t in params.items()}


def test_a_value_changed_inside_a_list_is_named_by_its_place() -> None:
    # `f([lr, 2])` with lr a Python float that changes: it read as the list's `type`.
    was = _FunctionType(xs=List(Literal(0.1), Literal(2)))
    now = _FunctionType(xs=List(Literal(0.09), Literal(2)))
    assert explain_retrace(was, now) == [
        {"arg": "xs[0]", "change": "value", "was": "float 0.1", "now": "float 0.09"}
    ]


def test_a_tuple_s_values_and_a_list_s_length() -> None:
    assert (
        explain_retrace(
            _FunctionType(t=Tuple(Literal(1), Literal(2))), _FunctionType(t=Tuple(Literal(1), Literal(5)))
        )[0]["arg"]
        == "t[1]"
    )
    (cause,) = explain_retrace(
        _FunctionType(xs=List(Literal(1))), _FunctionType(xs=List(Literal(1), Literal(2)))
    )
    assert cause["arg"] == "xs" and cause["change"] == "structure", cause
