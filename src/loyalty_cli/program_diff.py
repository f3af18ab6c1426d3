"""What a proposed program changes against the version in force, in words.

Lists of things with an `id` (rules, rewards, tier levels, offers, partners)
are matched by id, so a reordered list is not a change and an edited reward is
one "changed" line naming its fields, not a removal plus an addition.
"""

from __future__ import annotations

from typing import Any

from loyalty_cli.program import Program

# Sections whose items are matched by id, and the word for one item.
_BY_ID = {
    "rules": "rule",
    "rewards": "reward",
    "offers": "offer",
    "partners": "partner",
    "tiers.levels": "tier level",
}


def diff_programs(old: Program, new: Program) -> list[str]:
    """One plain sentence per change; an empty list when nothing changes."""
    # By alias: fields read as their YAML keys (`active.from`, not the field `from_`).
    before = old.model_dump(by_alias=True, exclude={"effective_from"})
    after = new.model_dump(by_alias=True, exclude={"effective_from"})
    lines: list[str] = []
    _walk("", before, after, lines)
    return lines


def _walk(path: str, before: Any, after: Any, lines: list[str]) -> None:
    if before == after:
        return
    if path in _BY_ID and isinstance(before, list) and isinstance(after, list):
        _diff_items(path, before, after, lines)
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else key
            _walk(sub, before.get(key), after.get(key), lines)
        return
    if before is None or before == [] or before == {}:
        lines.append(f"{path}: added ({_show(after)})")
    elif after is None or after == [] or after == {}:
        lines.append(f"{path}: removed (was {_show(before)})")
    else:
        lines.append(f"{path}: {_show(before)} -> {_show(after)}")


def _diff_items(path: str, before: list[dict], after: list[dict], lines: list[str]) -> None:
    word = _BY_ID[path]
    old = {item["id"]: item for item in before}
    new = {item["id"]: item for item in after}
    for item_id, item in new.items():
        if item_id not in old:
            lines.append(f"{word} '{item_id}' added: {_show(_compact(item))}")
    for item_id, item in old.items():
        if item_id not in new:
            lines.append(f"{word} '{item_id}' removed (was {_show(_compact(item))})")
    for item_id in (i for i in new if i in old):  # in the new file's order: stable output
        changes: list[str] = []
        _walk("", old[item_id], new[item_id], changes)
        if changes:
            lines.append(f"{word} '{item_id}' changed: " + "; ".join(changes))


def _compact(item: dict) -> dict:
    """Drop unset fields so an added item reads like the YAML that added it."""
    out = {}
    for key, value in item.items():
        if key == "id" or value in (None, [], {}):
            continue
        out[key] = _compact(value) if isinstance(value, dict) else value
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]  # as YAML writes them
    return str(value)
