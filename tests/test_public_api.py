"""The public surface: exactly what ``bridge.__all__`` lists, all documented."""

from __future__ import annotations

import inspect

import bridge
import bridge.exceptions
import bridge.types


def test_all_is_a_sorted_tuple_of_existing_names() -> None:
    assert isinstance(bridge.__all__, tuple)
    assert list(bridge.__all__) == sorted(bridge.__all__, key=str.lower) or sorted(
        bridge.__all__
    ) == list(bridge.__all__)
    for name in bridge.__all__:
        assert hasattr(bridge, name), name


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(bridge).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name not in {"annotations"}
    }
    assert public == set(bridge.__all__)


def test_public_names_present_as_bridge_and_are_documented() -> None:
    for name in bridge.__all__:
        value = getattr(bridge, name)
        assert value.__module__ == "bridge", name
        assert inspect.getdoc(value), f"{name} has no docstring"


def test_exception_tree() -> None:
    assert issubclass(bridge.ClientDisconnected, OSError)
    assert issubclass(bridge.WSGIProtocolError, bridge.ProtocolError)
    assert issubclass(bridge.ASGIProtocolError, ValueError)
    assert issubclass(bridge.AppLoadError, ImportError)
    for name in bridge.exceptions.__all__:
        assert issubclass(getattr(bridge.exceptions, name), bridge.BridgeError)


def test_types_module_names() -> None:
    for name in bridge.types.__all__:
        assert hasattr(bridge.types, name), name
