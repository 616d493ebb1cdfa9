"""The one strict YAML loader every manifest goes through, and the canonical dumper.

PyYAML's loaders accept things a registry must not (see docs/registry-format.md, "Strict YAML"):
duplicate keys (last one wins), YAML 1.1 scalars (`1.10` -> 1.1, `0123` -> 83, `no` -> False),
aliases whose expansion later costs minutes in a validator, and deep nesting that crashes the C
loader. So the document is read as a stream of parser events (libyaml's event parser does not
recurse) and the tree is built here with an explicit stack:

- refused: files over 1 MiB, non-UTF-8 bytes, control and bidi characters, anchors, aliases,
  explicit tags, more than one document, nesting deeper than MAX_DEPTH, duplicate or non-string
  keys;
- plain scalars stay strings, except `null`/`~`/empty (None) and `true`/`false` (bool); numbers
  are converted later by the pydantic model that knows the field's type, so a version written
  `1.10` stays "1.10".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from modelctl.errors import ManifestError, Problem

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# C0 controls except tab, newline and carriage return; DEL; C1 controls; bidi embeddings,
# overrides and isolates (Trojan Source); the BOM anywhere but the start.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_NULLS = frozenset(["", "~", "null", "Null", "NULL"])
_TRUE = frozenset(["true", "True", "TRUE"])
_FALSE = frozenset(["false", "False", "FALSE"])

Path = tuple[str | int, ...]

# YAML 1.2 core schema numbers, for free-form maps (model parameters) where no field type says
# what a plain scalar is.
_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


class Plain(str):
    """A plain (unquoted) scalar, kept as its exact text; see `resolve_plain`."""

    __slots__ = ()


def resolve_plain(value: Any) -> Any:
    """Turn plain scalars that are YAML 1.2 numbers into int or float, recursively.

    Only for free-form maps: typed fields convert through their pydantic type instead.
    """
    if isinstance(value, Plain):
        if _INT_RE.match(value):
            return int(value)
        if _FLOAT_RE.match(value):
            return float(value)
        return str(value)
    if isinstance(value, dict):
        return {key: resolve_plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [resolve_plain(child) for child in value]
    return value


@dataclass
class Document:
    """A loaded YAML document and the line (1-based) of every key and list item."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def _fail(source: str, message: str, line: int | None = None) -> ManifestError:
    """Every loader error goes through here; the text it quotes from the file (a key, an anchor,
    a tag, the parser's context) is redacted where it looks like a credential."""
    from modelctl.registry.secretscan import redact

    return ManifestError([Problem(source, "", redact(message), line)])


def decode(raw: bytes, source: str) -> str:
    """Check size and encoding; return the text. Raises ManifestError naming `source`."""
    if len(raw) > MAX_BYTES:
        raise _fail(source, f"file is over {MAX_BYTES:,} bytes, the limit for a manifest; split it")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(source, "file is UTF-16; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(
            source, f"invalid UTF-8 at byte {exc.start}; save the file as UTF-8", line
        ) from None
    text = text.removeprefix("\ufeff")
    bad = FORBIDDEN.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise _fail(
            source,
            f"forbidden character U+{ord(bad.group()):04X} (control or bidi character); remove it",
            line,
        )
    return text


def _scalar(event: Any) -> Any:
    value: str = event.value
    if event.implicit[0]:  # plain (unquoted) scalar
        if value in _NULLS:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return Plain(value)
    return value


def load(raw: bytes, source: str, *, with_lines: bool = True) -> Document:
    """Parse one YAML document strictly. Raises ManifestError with the file and line.

    `with_lines=False` skips recording where each key is (a third faster); callers that find
    a problem load again with lines to say where it is.
    """
    text = decode(raw, source)
    # Frames of containers under construction: [container, path, pending mapping key or None].
    stack: list[list[Any]] = []
    root: Any = None
    lines: dict[Path, int] = {}
    documents = 0
    nodes = 0
    scalar_t, map_t, seq_t = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    end_t = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    parser = _Loader(text)
    try:
        # The parser's own get_event loop: yaml.parse's generator costs a third of the time.
        while (event := parser.get_event()) is not None:
            kind = type(event)
            if kind in end_t:
                stack.pop()
                continue
            if kind is not scalar_t and kind is not map_t and kind is not seq_t:
                if kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        raise _fail(
                            source,
                            "several YAML documents in one file; keep one per file",
                            _line(event),
                        )
                elif kind is yaml.AliasEvent:
                    raise _fail(
                        source,
                        f"alias *{event.anchor} is not allowed; write the value out",
                        _line(event),
                    )
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise _fail(source, f"more than {MAX_NODES:,} values; split the file", _line(event))
            if event.anchor is not None:
                raise _fail(
                    source, f"anchor &{event.anchor} is not allowed; write values out", _line(event)
                )
            tag = event.tag
            if tag is not None and not (kind is scalar_t and tag == "!"):
                raise _fail(source, f"explicit tag {tag} is not allowed", _line(event))
            node: Any = _scalar(event) if kind is scalar_t else ({} if kind is map_t else [])
            path: Path = ()
            if stack:
                frame = stack[-1]
                parent = frame[0]
                if type(parent) is list:
                    if with_lines:
                        path = (*frame[1], len(parent))
                        lines[path] = _line(event)
                    parent.append(node)
                elif frame[2] is None:
                    # This node is a key.
                    if kind is not scalar_t or not isinstance(node, str):
                        raise _fail(source, "mapping keys must be plain strings", _line(event))
                    key = str(node)
                    if key in parent:
                        if not with_lines:
                            return load(raw, source, with_lines=True)  # raises, with both lines
                        first = lines.get((*frame[1], key))
                        where = f" (first at line {first})" if first else ""
                        raise _fail(source, f"duplicate key {key!r}{where}", _line(event))
                    frame[2] = key
                    if with_lines:
                        lines[(*frame[1], key)] = _line(event)
                    continue
                else:
                    if with_lines:
                        path = (*frame[1], frame[2])
                    parent[frame[2]] = node
                    frame[2] = None
            else:
                root = node
            if kind is not scalar_t:
                if len(stack) >= MAX_DEPTH:
                    raise _fail(source, f"nesting deeper than {MAX_DEPTH} levels", _line(event))
                stack.append([node, path, None])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise _fail(source, f"YAML syntax error: {reason}", line) from None
    except yaml.YAMLError as exc:  # reader errors carry no mark
        raise _fail(source, f"YAML error: {exc}") from None
    finally:
        parser.dispose()
    return Document(root, lines)


def _line(event: Any) -> int:
    mark = event.start_mark
    return int(mark.line) + 1 if mark is not None else 0


def load_mapping(raw: bytes, source: str, *, with_lines: bool = True) -> Document:
    """Like `load`, but the document must be a mapping."""
    doc = load(raw, source, with_lines=with_lines)
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise _fail(source, f"expected a mapping of fields at the top level, found {what}", 1)
    return doc


def dump(data: Any) -> str:
    """Canonical YAML for a manifest: key order kept, block style, strings quoted when needed."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return text
