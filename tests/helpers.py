"""Small helpers shared by the test modules."""
from __future__ import annotations

import copy

DELETE = object()  # as a value for edited(): remove the key instead


def edited(base: dict, path: tuple, value) -> dict:
    """A deep copy of ``base`` with the item at ``path`` (keys/indices) set to ``value``, or removed."""
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data
