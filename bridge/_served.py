"""The app ``python -m bridge serve`` hands to a server, built in each server process.

``BRIDGE_APP`` holds the user's import string, ``BRIDGE_INTERFACE`` its interface
when given on the command line, and ``BRIDGE_TARGET`` the interface the server
speaks. ``app`` is the user's app as that server needs it, bridged only when it
speaks the other interface. It is built at import, because some servers look the
attribute up in the module's namespace.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._interface import Interface, to_asgi, to_wsgi

if "" not in sys.path and os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())

_interface: Interface | None = os.environ.get("BRIDGE_INTERFACE") or None  # type: ignore[assignment]
_convert = to_asgi if os.environ.get("BRIDGE_TARGET") == "asgi" else to_wsgi
app: Any = _convert(os.environ["BRIDGE_APP"], interface=_interface)
