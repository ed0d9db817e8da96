"""Read a recipe file into plain Python values, refusing what no recipe needs.

`yaml.safe_load` is safe against code execution, not against every file a user (or a typo)
can produce. Some inputs made it crash with an exception that is not a `YAMLError` (a
traceback instead of a message), some made it slow or unbounded, and some were silently
misread. This module reads the file so that each of those becomes one `RecipeError` line:

- non-UTF-8 bytes: decoded explicitly (the platform's locale encoding must not decide), and
  reported with the byte's offset; files over `MAX_BYTES` (a recipe is about a kilobyte) are
  refused before parsing, since the pure-Python parser needs seconds for a megabyte;
- deep nesting: PyYAML's composer recurses once per level and hit Python's recursion limit
  (RecursionError) at a few hundred levels, and its scanner rescans every open bracket for
  each token (4000 unclosed brackets: 7 s, quadratic); nesting deeper than `MAX_DEPTH` is
  refused as soon as it is seen (the schema is three levels deep);
- aliases: PyYAML shares an aliased value instead of copying it, so a "billion laughs" file is
  small in memory, but anything that walks it (an error message's repr, `to_dict`) expands it
  exponentially. A document whose values, counted with aliases expanded, exceed `MAX_VALUES`
  is refused, as is an alias inside the value it names (a cycle);
- duplicate keys: PyYAML keeps the last silently, so `samples: 10` followed by `samples: 1000`
  ran 1000 samples; a key given twice in one mapping is refused (merge keys `<<` may still be
  overridden, as YAML intends);
- scalars whose constructor raises a plain exception: an impossible date (`2024-13-45`), an
  integer of more than 4300 digits (Python's int conversion limit), `!!int ''`,
  `!!bool maybe`, `!!timestamp x`; each is reported with its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pdegen.errors import RecipeError

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_VALUES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels (a recipe needs 3)"


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting limit while composing and line-numbered scalar errors."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._keys: list[str] = []  # the mapping keys (or [i]) above the node being composed
        self.paths: dict[int, str] = {}  # id(node) -> dotted path, filled by _check_graph

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # index: the key node for a mapping value, the position for a sequence item
        if isinstance(index, ScalarNode):
            self._keys.append(_key_name(index) or "?")
        else:
            self._keys.append(f"[{index}]" if isinstance(index, int) else "")
        try:
            if len(self._keys) > MAX_DEPTH:
                mark = self.peek_event().start_mark
                path = _where(self._keys)
                raise _RefusedError(_TOO_DEEP, mark, path)
            return super().compose_node(parent, index)
        finally:
            self._keys.pop()

    def fetch_flow_collection_start(self, TokenClass: type) -> None:  # noqa: N803 (PyYAML's)
        # The scanner holds a possible simple key per open bracket and rescans them all for
        # every token, so "[[[[..." costs O(depth^2) before the composer sees any depth
        # (4000 brackets: 7 s; 64 KiB of them: half an hour). Stop at the same depth here.
        if self.flow_level >= MAX_DEPTH:
            path = _where(self._keys)
            raise _RefusedError(_TOO_DEEP, self.get_mark(), path)
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as err:
            if not isinstance(node, ScalarNode):
                raise  # a collection's own errors are YAMLErrors: anything else is a bug
            kind = node.tag.rpartition(":")[2] if node.tag.startswith("tag:yaml.org") else node.tag
            why = str(err).split(";")[0] if isinstance(err, ValueError) else ""
            problem = f"{_clip(node.value)!r} is not a valid {kind}" + (f" ({why})" if why else "")
            raise _RefusedError(problem, node.start_mark, self.paths.get(id(node), "")) from None


class _RefusedError(ConstructorError):
    """Input this reader refuses: why (`problem`), where (the mark, and the field if known)."""

    def __init__(self, problem: str, mark: yaml.Mark, path: str = ""):
        super().__init__(None, None, problem, mark)
        self.path = path


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(keys: list[str]) -> str:
    """The field a too-deep value is under: its first mapping keys (list positions skipped)."""
    return ".".join([k for k in keys if k and not k.startswith("[")][:4])


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _key_name(node: Node) -> str | None:
    """The dotted-path spelling of a mapping key, or None when it is not a plain scalar."""
    if isinstance(node, ScalarNode) and node.tag != _MERGE_TAG:
        value = node.value
        if value and value.isprintable() and len(value) <= 60:
            return value
        return repr(_clip(value))
    return None


def _check_graph(root: Node, source: str) -> dict[int, str]:
    """Refuse cycles, alias bombs and duplicate keys in the composed node graph.

    Sizes are memoised per node, so a shared (aliased) node is measured once however often it
    is used, and the walk is linear in the file. Its recursion follows the document's nesting
    (an alias names a node that is already complete, or one of its own ancestors: a cycle), so
    it is no deeper than MAX_DEPTH.
    Returns each node's dotted path (for messages about a value).
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    paths: dict[int, str] = {}

    def size(node: Node, path: str) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RecipeError(
                f"{source}: {path or 'line ' + str(_line(node))}: an alias refers to the value "
                "that contains it (a cycle)"
            )
        active.add(key)
        paths[key] = path
        total = 1
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                total += size(child, f"{path}[{i}]")
        elif isinstance(node, MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                name = _key_name(key_node)
                ident = (key_node.tag, key_node.value)
                if name is not None and ident in seen:
                    where = f"{path}.{name}" if path else name
                    lines = sorted({seen[ident], _line(key_node)})
                    raise RecipeError(
                        f"{source}: {where}: given twice (line{'s' if len(lines) > 1 else ''} "
                        f"{' and '.join(map(str, lines))}; keep one)"
                    )
                if name is not None:
                    seen[ident] = _line(key_node)
                child = f"{path}.{name}" if path and name else (name or path)
                total += size(key_node, child) + size(value_node, child)
        active.discard(key)
        sizes[key] = total
        if total > MAX_VALUES:
            raise RecipeError(
                f"{source}: {path or 'the document'}: holds more than {MAX_VALUES} values once "
                "its aliases are expanded (a recipe needs a few dozen; is it an alias bomb?)"
            )
        return total

    size(root, "")
    return paths


def _yaml_error(err: yaml.YAMLError, text: str, source: str) -> RecipeError:
    """One line: where (line, column) and what the parser found."""
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, err.position) + 1
        what = f"character U+{err.character:04X} is not allowed in YAML"
        return RecipeError(f"{source}: not valid YAML at line {line} ({what})")
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or getattr(err, "context", None)
    what = f" ({' '.join(str(problem).split())})" if problem else ""
    return RecipeError(f"{source}: not valid YAML{where}{what}")


def read_recipe_file(path: str | Path) -> Any:
    """The parsed content of a recipe file (any YAML value: the caller checks its shape)."""
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as err:
        raise RecipeError(f"{source}: cannot read recipe ({err.strerror or err})") from None
    if len(raw) > MAX_BYTES:
        raise RecipeError(
            f"{source}: larger than {MAX_BYTES // 1024} KiB (a recipe is a few lines; "
            "is this the right file?)"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RecipeError(
            f"{source}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}; "
            "save the recipe as UTF-8)"
        ) from None
    try:
        loader = _Loader(text)  # checks the characters: a ReaderError already
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, source) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None  # empty, or only comments
        loader.paths = _check_graph(root, source)
        return loader.construct_document(root)
    except _RefusedError as err:
        where = f"{err.path}: " if err.path else ""
        line = err.problem_mark.line + 1
        raise RecipeError(f"{source}: {where}line {line}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, source) from None
    finally:
        loader.dispose()
