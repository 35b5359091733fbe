"""Loading an app from a ``"package.module:attribute"`` import string."""

from __future__ import annotations

import importlib
from typing import Any

from .exceptions import AppLoadError


def import_from_string(import_string: str) -> Any:
    """Import ``"module:attr"`` (``attr`` may be dotted) and return the object.

    :raises AppLoadError: with one message for a malformed string, one for a module
        that cannot be found and one for a missing attribute. An import error raised
        *inside* the module (a missing dependency of the app) propagates unchanged.
    """
    module_name, _, attrs = import_string.partition(":")
    if not module_name or not attrs:
        raise AppLoadError(
            f'Import string "{import_string}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
            raise
        raise AppLoadError(f'Could not import module "{module_name}".') from None
    instance: Any = module
    try:
        for attr in attrs.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise AppLoadError(f'Attribute "{attrs}" not found in module "{module_name}".') from None
    return instance
