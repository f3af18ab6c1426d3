"""What a run remembers of a customer until the next run (the `run_state` table).

To post a customer's new work the run needs where the customer stands: their
lots (what each still holds, which expire when), the ledger sources already
paid (events, birthdays, referrals, inactivity expiries), the receipts that
count for tiers, the punch-card counts, the last sale and the first activity.
All of it derives from the customer's ledger entries and scored receipts, and
rebuilding it from them is what a run used to do for every customer it touched,
so that a nightly run's cost grew with the customers' history.

A run now stores that state, as JSON, for every customer it worked on, with the
id of the customer's last ledger entry and the program versions it was made
under. The next run starts from it only when nothing else can have changed it
(`engine.run.Engine.fetch` decides): the customer's last entry is still that
one (no redemption, cancellation, adjustment or undo since), the program
versions are the same, and the new work holds no receipt the run must compare
with an earlier one (any refund naming an original, any receipt already scored:
lines added to it, a claimed receipt read again) and none dated before the
state's `since`. Otherwise the state is rebuilt from the ledger as before. So the
stored state is a cache: removing rows from `run_state` never changes a result.

Only what a later run can read is kept, so that the state stays the size of
the customer's recent activity, not of their history:
- lots that still hold points (`ledger._apply` treats an empty lot and a missing
  one alike; only a cancelled redemption gives points back to a lot, and the
  cancellation is a new entry, so that customer is rebuilt), with their expiry
  reminders;
- the receipts a tier decision can still look at: those within the longest
  tier window plus `retain_days` of any program version before `since` (the
  run's as-of date less LATE_DAYS). A later receipt dated before `since`, which
  could need older ones, has its customer rebuilt. A lifetime window keeps all.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from collections import Counter
from typing import Any

from loyalty_cli.db import RUN_STATE_FORMAT
from loyalty_cli.engine.tiers import Qualifier
from loyalty_cli.ledger import Lot, LotState

# Part of every stored timeline key: a new layout makes older rows not match, so
# they are rebuilt from the ledger instead of misread (db.RUN_STATE_FORMAT).
FORMAT = RUN_STATE_FORMAT

# The by_source keys a run consults later (membership only): events and birthdays
# paid, referrals paid, inactivity expiries taken (kept_sources). Purchases are looked
# up only for refunds of known receipts and corrections, which rebuild the state.
_KEPT_SOURCES = ("event", "referral")

# One encoder for every state (json.dumps with arguments builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)

# Receipts arriving this many days after their date (a late till export) still
# find the history they need in the stored state.
LATE_DAYS = 31


def timeline_key(versions: Any) -> str:
    """The program versions a state was made under (number, start, content)."""
    parts = [f"{v.version}@{v.effective_from.isoformat()}:{v.sha256}" for v in versions]
    return f"{FORMAT};" + ",".join(parts)


def history_reach(versions: Any) -> int | None:
    """How many days back a tier decision on a day can look (None: without limit)."""
    reach = 0
    for v in versions:
        tiers = v.program.tiers
        if tiers is None:
            continue
        kind = tiers.window_kind
        if kind == "lifetime":
            return None
        window = tiers.window_days if kind == "rolling" else 366
        reach = max(reach, (window or 0) + tiers.retain_days)
    return reach


def since(as_of: dt.date, reach: int | None) -> tuple[str, dt.date | None]:
    """(the `since` column, the first receipt date kept) for a state written at `as_of`."""
    if reach is None:
        return "", None  # every receipt kept: any date can be answered
    first = as_of - dt.timedelta(days=LATE_DAYS)
    return first.isoformat(), first - dt.timedelta(days=reach)


def kept_sources(by_source: dict[tuple[str, str | None], list[Any]]) -> list[tuple[str, str]]:
    """The sources with entries a later run looks up (see _KEPT_SOURCES): events,
    birthdays and referrals paid, inactivity expiries taken."""
    return [
        (kind, source_id)
        for (kind, source_id), found in by_source.items()
        if found
        and source_id is not None
        and (kind in _KEPT_SOURCES or (kind == "expiry" and source_id.startswith("inactivity:")))
    ]


def _ord(day: dt.date | None) -> int | None:
    return day.toordinal() if day is not None else None


def _day(number: int | None) -> dt.date | None:
    return dt.date.fromordinal(number) if number is not None else None


def encode(
    state: LotState,
    lot_version: dict[int, int | None],
    sources: list[tuple[str, str]],
    event_bonus: dict[str, list[dt.date]],
    history: list[Qualifier],
    punches: Counter[str],
    last_sale: dt.date | None,
    first_activity: dt.date | None,
    first_receipt: dt.date | None,
) -> str:
    """The state as compact JSON (dates as day numbers); receipts dated before
    `first_receipt` are left out (see `since`). The expiry reminders are not
    stored: after a run every lot that still holds points and has an expiry date
    is waiting for it (any expiry due by the run's date was posted), so they are
    made again from the lots."""
    lots = [
        [
            lot.entry_id,
            lot.date.toordinal(),
            lot.available_on.toordinal(),
            _ord(lot.expires_on),
            lot.points,
            lot.remaining,
            lot.partner,
            lot_version.get(lot.entry_id),
        ]
        for lot in state.lots.values()
        if lot.remaining > 0
    ]
    return _ENCODER.encode(
        {
            "lots": lots,
            "debt": state.debt,
            "balance": state.balance,
            "sources": sorted(list(key) for key in sources),
            "event_bonus": {r: [d.toordinal() for d in days] for r, days in event_bonus.items()},
            "history": [
                [q.date.toordinal(), q.transaction_id, q.amount, q.points]
                for q in history
                if first_receipt is None or q.date >= first_receipt
            ],
            "punches": dict(punches),
            "last_sale": _ord(last_sale),
            "first_activity": _ord(first_activity),
        }
    )


# What `loyalty check` compares of a stored lot with the ledger's replay:
# (points, remaining, available_on, expires_on), dates as ISO text.
LotFacts = tuple[int, int, str, str | None]


def lot_facts(lot: Lot) -> LotFacts:
    expires = lot.expires_on.isoformat() if lot.expires_on is not None else None
    return lot.points, lot.remaining, lot.available_on.isoformat(), expires


def holdings(text: str) -> tuple[dict[int, LotFacts], int, int]:
    """(each stored lot's facts by entry id, debt, balance): what `loyalty check`
    compares with the ledger, read without building the rest of the state."""
    data = json.loads(text)
    lots = {
        entry_id: (points, remaining, dt.date.fromordinal(available).isoformat(), _iso(expires))
        for entry_id, _date, available, expires, points, remaining, *_ in data["lots"]
    }
    return lots, data["debt"], data["balance"]


def _iso(number: int | None) -> str | None:
    return dt.date.fromordinal(number).isoformat() if number is not None else None


class Restored:
    """A stored state read back: the fields `engine.customer.CustomerWork` starts from."""

    __slots__ = (
        "state",
        "lot_version",
        "heap",
        "sources",
        "event_bonus",
        "history",
        "punches",
        "last_sale",
        "first_activity",
    )

    def __init__(self, text: str) -> None:
        data = json.loads(text)
        state = LotState()
        self.lot_version: dict[int, int | None] = {}
        fromordinal = dt.date.fromordinal
        for entry_id, date, available, expires, points, remaining, partner, version in data["lots"]:
            state.lots[entry_id] = Lot(
                entry_id,
                fromordinal(date),
                fromordinal(available),
                _day(expires),
                points,
                remaining,
                partner,
            )
            self.lot_version[entry_id] = version
        state.debt = data["debt"]
        state.balance = data["balance"]
        self.state = state
        self.heap = [
            (lot.expires_on, lot.entry_id) for lot in state.lots.values() if lot.expires_on
        ]
        heapq.heapify(self.heap)
        self.sources = [(kind, source_id) for kind, source_id in data["sources"]]
        self.event_bonus = {
            rule: [fromordinal(d) for d in days] for rule, days in data["event_bonus"].items()
        }
        self.history = [
            Qualifier(fromordinal(day), tid, amount, points)
            for day, tid, amount, points in data["history"]
        ]
        self.punches: Counter[str] = Counter(data["punches"])
        self.last_sale = _day(data["last_sale"])
        self.first_activity = _day(data["first_activity"])
