"""The fingerprint of a user's model (``FILE.py:FUNCTION`` or ``package.module:FUNCTION``): part of a store
key, so that runs of an edited model file never mix with the old ones. Needs nothing of the trainers."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path


def model_fingerprint(spec: str) -> str:
    """sha256 over ``spec`` and the bytes of the file it names (``FILE.py``, or the module's source
    file, found without running it): the part of a store key that tells an edited model from the old."""
    spec = str(spec).strip()
    where, _, _ = spec.rpartition(":")
    h = hashlib.sha256(spec.encode())
    path: str | None = None
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = os.path.expanduser(where)
    elif where:
        try:
            found = importlib.util.find_spec(where)
            path = found.origin if found is not None else None
        except (ImportError, ValueError):
            path = None
    if path and os.path.isfile(path):
        h.update(Path(path).read_bytes())
    return h.hexdigest()
