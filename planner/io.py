"""Reading instance files (JSON or YAML, safely) and writing results atomically."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from planner.status import InstanceError

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_VALUES = 5_000_000  # numbers, strings and containers, counted after alias expansion


class _BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no object construction) with a cap on alias use and nesting depth."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
        if self.check_event(yaml.events.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nesting deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _shape_problem(value: Any, depth_limit: int = MAX_DEPTH, size_limit: int = MAX_VALUES) -> str | None:
    """Why parsed data is too deep, too large once YAML aliases are expanded, or recursive; else None.

    Shared (aliased) containers are measured once and their expanded size reused, so a
    "billion laughs" document is rejected in time linear in its text, not in its expansion.
    """
    memo: dict[int, tuple[int, int]] = {}  # id(container) -> (depth, expanded size)
    path: set[int] = set()  # containers whose children are being measured (the current branch)
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        key = id(item)
        kids = list(item.values()) if isinstance(item, dict) else item
        if not children_done:
            if key in memo:
                continue
            if key in path:
                return "a YAML alias refers to itself"
            path.add(key)
            if len(path) > depth_limit:
                return f"nesting deeper than {depth_limit} levels"
            stack.append((item, True))
            stack.extend((kid, False) for kid in kids if isinstance(kid, (dict, list)))
            continue
        path.discard(key)
        depth = 1 + max((memo[id(k)][0] if isinstance(k, (dict, list)) else 1 for k in kids), default=0)
        size = 1 + sum(memo[id(k)][1] if isinstance(k, (dict, list)) else 1 for k in kids)
        if depth > depth_limit:
            return f"nesting deeper than {depth_limit} levels"
        if size > size_limit:
            return f"more than {size_limit} values (after expanding YAML aliases)"
        memo[key] = (depth, size)
    return None


def parse_text(text: str, source: str, fmt: str | None = None) -> Any:
    """Parse JSON or YAML text. ``fmt`` is 'json', 'yaml' or None (from the suffix, else sniffed)."""
    if fmt is None:
        suffix = Path(source).suffix.lower()
        fmt = "yaml" if suffix in (".yaml", ".yml") else "json" if suffix == ".json" else None
    if fmt is None:
        fmt = "json" if text.lstrip()[:1] in ("{", "[") else "yaml"
    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise InstanceError(source, "", f"nesting deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise InstanceError(source, "", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts, a bad YAML date
        why = "a number has too many digits" if "digits" in str(exc) else str(exc).splitlines()[0][:200]
        raise InstanceError(source, "", f"not valid {'JSON' if fmt == 'json' else 'YAML'}: {why}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InstanceError(source, "", f"not valid YAML: {problem}{where}") from None
    problem = _shape_problem(data)
    if problem:
        raise InstanceError(source, "", problem)
    return data


def read_data_file(path: str | os.PathLike) -> Any:
    """Read and parse one JSON/YAML file, turning every I/O or syntax problem into an InstanceError."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InstanceError(source, "", "file not found") from None
    except OSError as exc:
        raise InstanceError(source, "", f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise InstanceError(source, "", "is a directory, not a file")
    if size > MAX_FILE_BYTES:
        raise InstanceError(source, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InstanceError(source, "", f"cannot read: {exc.strerror or exc}") from None
    return parse_bytes(raw, source)


def parse_bytes(raw: bytes, source: str) -> Any:
    """Parse the bytes of a JSON/YAML file read elsewhere (size, encoding and syntax checked)."""
    if len(raw) > MAX_FILE_BYTES:
        raise InstanceError(source, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InstanceError(source, "", "not UTF-8 text") from None
    if not text.strip():
        raise InstanceError(source, "", "file is empty")
    return parse_text(text, source)


def _file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would give: the existing file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file beside it, fsync, rename); on any failure
    the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sweep_stale_temporaries(folder, path.name)


STALE_SECONDS = 60.0


def _sweep_stale_temporaries(folder: Path, name: str) -> None:
    """Remove temporary files of earlier writes of ``name`` that were killed before their rename
    (SIGKILL, power loss): those whose writing process is gone and that are over a minute old."""
    import time

    prefix = f".{name}."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(".tmp")):
            continue
        pid_text = e.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            if now - e.stat(follow_symlinks=False).st_mtime < STALE_SECONDS:
                continue
            if pid != os.getpid():
                try:
                    os.kill(pid, 0)
                    continue  # its writer is still running
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue  # a live process of another user
            else:
                continue
            os.unlink(e.path)
        except OSError:
            continue


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def write_instance(path: str | os.PathLike, data: dict) -> None:
    """Write an instance mapping as JSON, or YAML when the path ends in .yaml/.yml."""
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    else:
        write_json(path, data)
