"""The chaos harness (tools/chaos, docs/CHAOS.md). Its protocol code is the Python client
package in clients/python (`fauna`), made importable here without installing it."""

import os as _os
import sys as _sys

_CLIENT = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))),
                        "clients", "python")
if _CLIENT not in _sys.path:
    _sys.path.insert(0, _CLIENT)
