"""The program file's YAML, read safely and exactly (see program.py's docstring):
YAML-1.2 booleans and integers, floats as `Decimal` from their text, no python tags,
and no alias bombs, recursive aliases or duplicate keys."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_ALIASES = 100
MAX_NODES = 100_000

_YAML12 = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")


class Loader(yaml.SafeLoader):
    """SafeLoader with Decimal floats, YAML-1.2 booleans and integers, and an alias
    budget."""

    yaml_implicit_resolvers = {
        ch: [r for r in resolvers if r[0] not in _YAML12]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"too many aliases (more than {MAX_ALIASES})", event.start_mark
                )
        return super().compose_node(parent, index)  # type: ignore[misc]


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# YAML 1.2 integers: decimal (leading zeros and `_` allowed), 0o octal, 0x hex.
# YAML 1.1 read 0042 as octal 34 and 1:30 as 90 (base 60): a SKU or a count of
# days silently changed.
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)


_MAX_DIGITS = 100


class WrittenInt(int):
    """An integer that remembers how the YAML wrote it: a code such as `sku: 0042`
    is the text `0042`, not `42`."""

    text: str

    def __new__(cls, value: int, text: str) -> WrittenInt:
        number = super().__new__(cls, value)
        number.text = text
        return number


def _construct_int(loader: yaml.SafeLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    body = digits.lstrip("+-")
    # int() refuses thousands of digits, and no program needs 100; a version stored
    # before this rule (a long numeric code) still loads.
    if len(body) > (_MAX_DIGITS if not isinstance(loader, StoredLoader) else 4300):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"a number of {len(body):,} digits is too long (quote it if it is a code)",
            node.start_mark,
        )
    bases = {"0x": 16, "0o": 8, "0b": 2}
    if body[:2] in bases:
        value = int(body[2:], bases[body[:2]])
    elif ":" in body:  # base 60 (StoredLoader only)
        value = 0
        for part in body.split(":"):
            value = value * 60 + int(part)
    else:
        value = int(body, 10)
    return WrittenInt(sign * value, text)


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class StoredLoader(Loader):
    """For versions applied before the loader read YAML 1.2 integers: the YAML 1.1
    forms no longer read as numbers (0b1110, base 60 as in 1:30, a signed or `_`
    hex such as +0x1_0) still do, so an applied version never stops loading. (A
    leading zero now means decimal.)"""


StoredLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"),
    list("-+0123456789"),
)


def _construct_decimal(loader: yaml.SafeLoader, node: ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
    if text.lower() in special:
        return Decimal(special[text.lower()])
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"'{text}' is not a number", node.start_mark
        ) from exc


Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _construct_timestamp(loader: yaml.SafeLoader, node: ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        # 2026-13-01 looks like a date but is none: kept as the text, so validation
        # says which field wanted a date (with every other problem), as when quoted.
        return str(node.value)


Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


class TreeError(Exception):
    def __init__(self, message: str, node: Node, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.field = field


_TEXT = "tag:yaml.org,2002:str"


def open_quote_line(text: str, before: int) -> int | None:
    """The first line before line index `before` with an odd number of double
    quotes (comments aside): where a syntax error found far below most often
    starts (`program: "Demo` runs on to the next quote, lines later)."""
    for number, line in enumerate(text.splitlines()[:before], start=1):
        code = line.split(" #", 1)[0]
        quotes = code.count('"') - code.count('\\"')  # \" inside a quote is no quote
        if quotes % 2:
            return number
    return None


def check_tree(root: Node) -> None:
    """Refuse recursive aliases, documents that expand too far, duplicate keys and
    keys that are lists or mappings; every other key is read as the text it is."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node, path: str) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise TreeError("a recursive alias is not allowed", node, path or None)
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            seen: dict[str, Node] = {}
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    raise TreeError(
                        "a key must be a name, not a list or a mapping", k, path or None
                    )
                sub = f"{path}.{k.value}" if path else str(k.value)
                if k.tag not in (_TEXT, "tag:yaml.org,2002:merge"):
                    # A key is a name as written: `true:` or `2026:` is the key
                    # 'true' or '2026' (unknown, or a custom event type), not a bool.
                    k.tag = _TEXT
                if k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        first = seen[k.value].start_mark.line + 1
                        raise TreeError(
                            f"duplicate key '{k.value}' (first at line {first})", k, sub
                        )
                    seen[k.value] = k
                total += size(k, sub) + size(v, sub)
        active.discard(key)
        if total > MAX_NODES:
            raise TreeError(
                f"the document is too large (more than {MAX_NODES} values)", node, path or None
            )
        sizes[key] = total
        return total

    size(root, "")
