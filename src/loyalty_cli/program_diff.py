"""What a proposed program changes against the version in force, in words.

Lists of things with an `id` (rules, rewards, tier levels, offers, partners)
are matched by id, so a reordered list is not a change and an edited reward is
one "changed" line naming its fields, not a removal plus an addition; but offers
are picked first match first, so their order is said. A list of codes (stores,
categories) is a set: its order changes nothing. A bonus written as a number is
the same as `{points: N}`.
"""

from __future__ import annotations

import json
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
    before = _bonus_forms(old.model_dump(by_alias=True, exclude={"effective_from"}))
    after = _bonus_forms(new.model_dump(by_alias=True, exclude={"effective_from"}))
    lines: list[str] = []
    _walk("", before, after, lines)
    return lines


def _bonus_forms(dumped: dict[str, Any]) -> dict[str, Any]:
    """`signup: 50` as `signup: {points: 50}`: one setting, two ways to write it."""
    bonuses = dumped.get("bonuses")
    if isinstance(bonuses, dict):
        dumped["bonuses"] = {
            k: {"points": v, "limit": None} if isinstance(v, int) else v for k, v in bonuses.items()
        }
    return dumped


def _walk(path: str, before: Any, after: Any, lines: list[str]) -> None:
    if before == after or _same_codes(path, before, after):
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


def _same_codes(path: str, before: Any, after: Any) -> bool:
    """Two lists of the same codes in another order (`stores: [S2, S1]`); a tier's
    perks are text shown in their order, not codes."""
    if path.endswith("perks") or not (isinstance(before, list) and isinstance(after, list)):
        return False
    if any(isinstance(v, (dict, list)) for v in (*before, *after)):
        return False
    return sorted(map(str, before)) == sorted(map(str, after))


def _diff_items(path: str, before: list[dict], after: list[dict], lines: list[str]) -> None:
    word = _BY_ID[path]
    old = {item["id"]: item for item in before}
    new = {item["id"]: item for item in after}
    if path == "offers" and _picks_change(list(old), list(new)):
        lines.append(
            f"offers: order {_show(list(old))} -> {_show(list(new))} "
            "(each customer gets the first that matches)"
        )
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


def _picks_change(before: list[str], after: list[str]) -> bool:
    """Whether the first-match order of the offers changes beyond removals and
    additions at the end: offers kept in another order, or one added before a kept
    one (it takes the customers the kept one had)."""
    kept = [i for i in after if i in before]
    if kept != [i for i in before if i in after]:
        return True
    last_kept = max((n for n, i in enumerate(after) if i in before), default=-1)
    return any(i not in before for i in after[:last_kept])


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
        # An unset key is not written in the YAML either.
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]  # as YAML writes them
    if isinstance(value, str) and not value.isprintable():
        # Quoted, the invisible characters written out (a tab as \t, a no-break space
        # as \u00a0), the rest as it is.
        shown = "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in value)
        return f'"{shown}"'
    return str(value)
