"""One customer's new work in a run, processed in order against their replayed lots:
receipts (earn, bonuses, tiers, punch cards, refunds), events, birthdays, referral
payouts and expiries, posted to the batch's `Output`."""

from __future__ import annotations

import datetime as dt
import heapq
import json
import operator
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

from loyalty_cli import ledger
from loyalty_cli.engine import state as statemod
from loyalty_cli.engine import tiers as tiermod
from loyalty_cli.engine.batch import Batch, CustomerRow, Scored
from loyalty_cli.engine.dates import add_months, birthday_in, period_key
from loyalty_cli.engine.output import Output
from loyalty_cli.engine.scoring import (
    Receipt,
    base_refund_points,
    partner_multiplier,
    proportional_clawback,
    score_receipt,
    when_plan,
)
from loyalty_cli.ledger import LotState, Row
from loyalty_cli.program import Program, ProgramVersion, VersionTimeline

if TYPE_CHECKING:
    from loyalty_cli.engine.run import Engine

# Event types the engine derives itself; rows of these types in `events` are ignored.
DERIVED_EVENTS = ("birthday", "referral")

# A Row from its 15 fields in one C call (Row(...) runs a Python __new__): hot paths.
_new = tuple.__new__
# (date, item class, key): the payload after them is not comparable.
_item_order = operator.itemgetter(0, 1, 2)


def inactivity_due(timeline: VersionTimeline, last_sale: dt.date) -> dt.date | None:
    """The day the points expire when `last_sale` stays the last sale, by the version
    in force that day (None: it has no inactivity expiry)."""
    version = timeline.get(last_sale)
    if version is None:
        return None
    expiry = version.program.expiry
    if expiry is None or expiry.policy != "inactivity":
        return None
    return add_months(last_sale, expiry.months)


# What a restored state holds for a source already paid: a stand-in entry worth
# nothing, so that membership tests see it and any sum over it adds zero.
_PAID = Row(0, dt.date.min, "", "paid", 0, 0, "")

# Item classes within a day: expiries (handled before items), receipts, events,
# birthdays, referral payouts to the referrer, a referee's sale scored before.
_RECEIPT, _EVENT, _BIRTHDAY, _REFERRER, _REFEREE = 1, 2, 3, 4, 5


class CustomerWork:
    """One customer's new work, processed in order against their replayed lots."""

    def __init__(self, engine: Engine, cid: str, data: Batch, out: Output) -> None:
        self.e = engine
        self.cid = cid
        self.out = out
        self.row = data.customers.get(cid, CustomerRow())
        self.receipts = data.receipts.get(cid, [])
        self.events = data.events.get(cid, [])
        self.referral_paid = cid in data.referral_paid
        self.referee_sales = data.referee_sales.get(cid, []) if self.row.referred_by else []
        self.by_source: dict[tuple[str, str | None], list[Row]] = {}
        self.by_lot: dict[int, list[Row]] = {}
        # Inactivity expiries posted already that are due again (_reopen_inactivity).
        self.reopened: set[str] = set()
        self.event_bonus: dict[str, list[dt.date]] = {}
        # original receipt -> the refunds that clawed points back from it (see _refund)
        self.refunds_of: dict[str, set[str]] = {}
        self.lot_version: dict[int, int | None] = {}  # lot entry id -> its program version
        self.heap: list[tuple[dt.date, int]] = []
        self.last_scored: tuple[dt.date, Program] | None = None
        saved = data.states.get(cid)
        # The last sale the stored state knew (restored only; see saved()).
        self.saved_last_sale: dt.date | None = None
        if saved is not None:
            self._restore(*saved)
            return
        entries = data.entries.get(cid, [])
        # ledger.replay(entries), the entries being in id order already.
        self.state: LotState = LotState()
        for entry in entries:
            ledger._apply(self.state, entry)
        for entry in entries:
            self._index(entry)
        self.last_entry = entries[-1].entry_id if entries else 0
        scored = data.scored.get(cid)
        if not scored:
            # A new member (every member, in a first run): nothing remembered.
            self.scored: dict[str, Scored] = {}
            self.history = tiermod.History()
            self.punches: Counter[str] = Counter()
            self.last_sale: dt.date | None = None
            self.first_activity: dt.date | None = min(e.date for e in entries) if entries else None
            self.first_fact = self.first_activity
            return
        self.scored = {s.transaction_id: s for s in scored}
        self.history = tiermod.History(
            [
                tiermod.Qualifier(s.date, s.transaction_id, s.amount, s.points)
                for s in self.scored.values()
            ]
        )
        self.punches = Counter()
        for s in self.scored.values():
            for rid in (s.punches or "").split(","):
                if rid:
                    self.punches[rid] += 1
        sales = [s.date for s in self.scored.values() if s.amount >= 0]
        self.last_sale = max(sales) if sales else None
        firsts = [s.date for s in self.scored.values()] + [e.date for e in entries]
        self.first_activity = min(firsts) if firsts else None
        # The earliest scored receipt or entry: where the next run's first_activity
        # starts (process() moves first_activity for this run's items only).
        self.first_fact = self.first_activity

    def _restore(self, last_entry: int, text: str) -> None:
        """Start from the state the last run stored (see engine/state.py). Only
        receipts never scored come (see Engine._states), so `scored` starts empty."""
        saved = statemod.Restored(text)
        self.last_entry = last_entry
        self.state = saved.state
        self.lot_version = saved.lot_version
        self.heap = saved.heap
        for key in saved.sources:
            # Only looked up by key (paid or not): the entries themselves are not kept.
            self.by_source[key] = [_PAID]
        self.event_bonus = saved.event_bonus
        self.scored = {}
        self.history = tiermod.History(saved.history)
        self.punches = saved.punches
        self.last_sale = self.saved_last_sale = saved.last_sale
        self.first_activity = self.first_fact = saved.first_activity

    def saved(self) -> tuple[str, int, str, str, str, str]:
        """The run_state row: where this customer stands after the run."""
        # The last sale among all scored receipts: when rebuilt, `scored` holds them all
        # (a correction may have turned a sale into a refund); when restored, no earlier
        # receipt changed, so the stored one still counts.
        sales = [s.date for s in self.scored.values() if s.amount >= 0]
        if self.saved_last_sale is not None:
            sales.append(self.saved_last_sale)
        text = statemod.encode(
            self.state,
            self.lot_version,
            statemod.kept_sources(self.by_source),
            self.event_bonus,
            self.history.items,
            self.punches,
            max(sales) if sales else None,
            self.first_fact,
            self.e.first_receipt,
        )
        engine = self.e
        return (
            self.cid,
            self.last_entry,
            engine.as_of.isoformat(),
            engine.since,
            engine.timeline_key,
            text,
        )

    def _index(self, entry: Row) -> None:
        key = (entry.source_type, entry.source_id)
        if entry.kind == "reversal" and entry.source_type == "event":
            self._unpay_event(key)
        else:
            found = self.by_source.get(key)
            if found is None:
                self.by_source[key] = [entry]
            else:
                found.append(entry)
        if entry.lot_id is not None:
            self.by_lot.setdefault(entry.lot_id, []).append(entry)
        if entry.kind == "clawback" and entry.note:
            # Every claw-back of a refund naming its original says so in its note
            # (_refund), aimed or not: one whose receipt's lots were empty (spent,
            # expired) is an unaimed entry, and still counts against the receipt.
            original = ledger.refunded_receipt(entry.note)
            if original is not None:
                self.refunds_of.setdefault(original, set()).add(entry.source_id)  # type: ignore[arg-type]
        if entry.source_type == "event" and entry.kind == "bonus" and entry.rule_id:
            self.event_bonus.setdefault(entry.rule_id, []).append(entry.date)
        if entry.points > 0 and entry.kind != "redemption_reversed":  # a lot
            self.lot_version[entry.entry_id] = entry.program_version
            if entry.expires_on is not None:
                heapq.heappush(self.heap, (entry.expires_on, entry.entry_id))

    def _unpay_event(self, key: tuple[str, str | None]) -> None:
        """`import undo` took an event's bonus back (undone rows count nowhere): as if
        it was never paid, so a corrected file may bring the event again, and the
        once-per-customer rule and the limits no longer count it."""
        for earlier in self.by_source.pop(key, []):
            dates = self.event_bonus.get(earlier.rule_id or "") if earlier.kind == "bonus" else None
            if dates and earlier.date in dates:
                dates.remove(earlier.date)

    def _entry(self, **fields: Any) -> Row:
        """An entry carrying the next ledger id (ids are assigned in order)."""
        return Row(entry_id=self.e.next_id, **fields)

    def _post(self, entry: Row) -> Row:
        # Output.post, inlined (once per entry posted).
        engine = self.e
        engine.next_id += 1
        self.out.entries.append(entry)
        if entry.source_type == "referral" and entry.source_id is not None:
            engine.referral_paid.add(entry.source_id)
        result = engine.result
        result.entries[entry.kind] += 1
        result.points[entry.kind] += entry.points
        ledger._apply(self.state, entry)
        self._index(entry)
        if entry.points > 0 and engine.inactivity and self.last_sale is not None:
            self._reopen_inactivity(entry.date, entry.available_on or entry.date)
        self.last_entry = entry.entry_id
        if self.first_fact is None or entry.date < self.first_fact:
            self.first_fact = entry.date
        return entry

    # ---- the timeline
    def process(self) -> None:
        as_of = self.e.as_of
        items: list[tuple[dt.date, int, str, Any]] = []
        same_day = {(r.date, r.transaction_id) for r in self.receipts}
        for receipt in self.receipts:
            order = receipt.transaction_id
            named = [n for n in _named(receipt) if (receipt.date, n) in same_day]
            if named:
                # A refund of a receipt of the same day comes right after it (the last
                # of them, if it names several), whatever its id: before, it found
                # nothing scored and clawed back at the base rate.
                order = f"{max(named)}\x00{order}"
            items.append((receipt.date, _RECEIPT, order, receipt))
        for event_id, etype, date in self.events:
            items.append((date, _EVENT, event_id, etype))
        for date, referee, points, version in self.e.referrer_due.pop(self.cid, []):
            items.append((date, _REFERRER, referee, (points, version)))
        if not self.referral_paid:
            # Their referred_by (or their referrer's record) came after a run scored
            # their sales: the first that qualifies pays now, dated itself, as it
            # would have when scored.
            items += [(date, _REFEREE, tid, amount) for date, amount, tid in self.referee_sales]
        # Birthdays count from the first receipt or entry (without joined_on). What
        # this run will post counts already (the next run finds it in the ledger):
        # its receipts, the referral payouts it owes, and events that earn points.
        # An event that earns nothing posts nothing and is no activity in any run.
        active = [r.date for r in self.receipts]
        active += [item[0] for item in items if item[1] == _REFERRER]
        active += [date for _, etype, date in self.events if self._earns(etype, date)]
        if active and (self.first_activity is None or min(active) < self.first_activity):
            self.first_activity = min(active)
        items.extend(self._birthdays())
        items.sort(key=_item_order)
        for date, kind, key, payload in items:
            self._expire_until(date)
            if kind == _RECEIPT:
                self._receipt(payload)
            elif kind == _EVENT:
                self._event(key, payload, date)
            elif kind == _BIRTHDAY:
                self._birthday(date, key, payload)
            elif kind == _REFERRER:
                self._referrer(date, key, *payload)
            else:
                self._earlier_sale(date, payload, key)
        self._expire_until(as_of)
        self.e.result.customer_ids.add(self.cid)
        if self.last_scored is not None and self.last_scored[1].tiers is not None:
            # The tier after the newest receipt scored now (tier_on() computes any date).
            day, program = self.last_scored
            level = tiermod.level_at(program, self.history, day)
            if level is not None:
                self.out.tiers.append((self.cid, day.isoformat(), level.id))

    def _earns(self, event_type: str, on: dt.date) -> bool:
        """An event of this type on this day pays a bonus (limits aside)."""
        if event_type in DERIVED_EVENTS:
            return False
        version = self.e.version_on(on)
        spec = version.program.bonus_for(event_type) if version is not None else None
        return spec is not None and spec.points > 0

    # ---- expiries
    def _expire_until(self, day: dt.date) -> None:
        heap = self.heap
        if not self.e.inactivity:
            # Fixed expiries only: the loop below with no inactivity date due.
            while heap and heap[0][0] <= day:
                expires_on, lot_id = heapq.heappop(heap)
                self._expire_lot(lot_id, expires_on)
            return
        while True:
            fixed = self.heap[0][0] if self.heap else None
            inactive = self.inactivity_due()
            if fixed is not None and fixed <= day and (inactive is None or fixed <= inactive):
                expires_on, lot_id = heapq.heappop(self.heap)
                self._expire_lot(lot_id, expires_on)
            elif inactive is not None and inactive <= day:
                self._expire_inactive(inactive)
            else:
                return

    def _expire_lot(self, lot_id: int, expires_on: dt.date) -> None:
        lot = self.state.lots.get(lot_id)
        if lot is None or lot.remaining <= 0 or lot.expires_on != expires_on:
            return
        version = self.lot_version.get(lot_id)
        left = lot.remaining
        self._post(
            _new(Row, (
                self.e.next_id, expires_on, self.cid, "expire", -left,
                -self._value(left, version, expires_on), "expiry", str(lot_id),
                None, version, lot_id, None, None, lot.partner, None,
            ))
        )  # fmt: skip

    def inactivity_due(self) -> dt.date | None:
        if self.last_sale is None:
            return None
        due = inactivity_due(self.e.timeline, self.last_sale)
        key = self._inactivity_key()
        if due is None or (("expiry", key) in self.by_source and key not in self.reopened):
            return None
        return due

    def _reopen_inactivity(self, date: dt.date, available_on: dt.date) -> None:
        """Points posted now, dated `date`, that the inactivity expiry of the last
        sale, posted already, would have taken (a late receipt or line dated before
        it, a receipt scored again after an undo): that expiry is due again, for them."""
        key = self._inactivity_key()
        if ("expiry", key) not in self.by_source:
            return
        due = inactivity_due(self.e.timeline, self.last_sale)  # type: ignore[arg-type]
        if due is not None and date < due and available_on <= due:
            self.reopened.add(key)

    def _inactivity_key(self) -> str:
        return f"inactivity:{self.cid}:{self.last_sale}"

    def _expire_inactive(self, due: dt.date) -> None:
        points = self.state.available(due)
        version = self.e.timeline.get(self.last_sale) if self.last_sale else None
        entry = self._entry(
            date=due,
            customer_id=self.cid,
            kind="expire",
            points=-max(points, 0),
            value=-self._value(max(points, 0), version.version if version else None, due),
            source_type="expiry",
            source_id=self._inactivity_key(),
            program_version=version.version if version else None,
            note="inactivity",
        )
        self.reopened.discard(self._inactivity_key())
        if points > 0:
            self._post(entry)
        else:
            # Nothing to take: remember it was checked so it is not looked at again.
            self.by_source.setdefault(("expiry", self._inactivity_key()), [])

    def _value(self, points: int, version: int | None, on: dt.date) -> int:
        pv = self.e.timeline.by_number.get(version) if version else None
        program = (pv or self.e.timeline.at(on)).program
        return ledger.points_value(points, program.point_value, program.currency)

    # ---- receipts
    def _lot_dates(
        self, program: Program, date: dt.date, pending: bool
    ) -> tuple[dt.date, dt.date | None]:
        key = (id(program), date, pending)
        cached = self.e.lot_dates.get(key)
        if cached is None:
            cached = self.e.lot_dates[key] = self._compute_lot_dates(program, date, pending)
        return cached

    def _compute_lot_dates(
        self, program: Program, date: dt.date, pending: bool
    ) -> tuple[dt.date, dt.date | None]:
        available = date + dt.timedelta(days=program.pending_days if pending else 0)
        expiry = program.expiry
        expires = (
            add_months(available, expiry.months) if expiry and expiry.policy == "fixed" else None
        )
        return available, expires

    def _receipt(self, receipt: Receipt) -> None:
        old = self.scored.get(receipt.transaction_id)
        if old is not None:
            if (
                old.lines != len(receipt.lines)
                or old.amount != receipt.amount
                or old.tax != receipt.tax
            ):
                self._rescore(receipt, old)
            return
        version = self.e.version_on(receipt.date)
        self.e.result.receipts += 1
        q = tiermod.Qualifier(receipt.date, receipt.transaction_id, receipt.amount, 0)
        if version is None:
            # Before the first program version: remembered, earns nothing.
            self.e.result.before_program += 1
            # A refund then withdraws nothing (no card yet): `[]`, not the NULL of
            # refunds scored before schema 10.
            self._remember(receipt, 0, None, None, None, "[]" if receipt.is_refund else None)
            self.history.add(q)
            return
        program = version.program
        level = tiermod.level_for_receipt(program, self.history, q)
        tier = level.id if level is not None else None
        if receipt.amount < 0:  # a refund
            withdrew: list[str] = []
            q.points = -sum(
                self._refund(part, version, level, withdrew) for part in _by_original(receipt)
            )
            self._remember(receipt, q.points, tier, version.version, None, json.dumps(withdrew))
            self.history.add(q)
            return
        score = score_receipt(program, receipt, tier, tiermod.multiplier(level))
        earn, bonuses, note = score.earn, score.bonuses, None
        q.points = earn + sum(points for _, points in bonuses) if bonuses else earn
        if receipt.transaction_id in self.e.undone_before and self.refunds_of.get(
            receipt.transaction_id
        ):
            # Scored again after an undo took it back: the refunds of it that stand
            # took their claw-back from its first scoring, which the undo spared (the
            # two net to nothing). Posted now is what is left of the new scoring after
            # the claw-backs those refunds make of it, as in a shop that never had
            # the first.
            taken = self._standing_claws(receipt, program, q.points)
            if taken > 0:
                earn, bonuses = _less(earn, bonuses, taken)
                note = f"less {taken} its standing refunds take back"
        self._post_score(receipt, version, earn, score.rule_ids, bonuses, score.partner, note)
        self.history.add(q)
        punches = self._punch(receipt, program, tier)
        self._remember(receipt, q.points, tier, version.version, punches)
        if self.last_sale is None or receipt.date > self.last_sale:
            self.last_sale = receipt.date
            if self.e.inactivity and q.points > 0:
                # Its points were posted before it became the last sale (a receipt
                # scored afresh after an undo, whose expiry is posted already).
                self._reopen_inactivity(receipt.date, receipt.date)
        if not self.referral_paid and self.row.referred_by:
            self._referee(receipt, version)
        self.last_scored = (receipt.date, program)

    def _post_score(
        self,
        receipt: Receipt,
        version: ProgramVersion,
        earn: int,
        rule_ids: list[str],
        bonuses: list[tuple[str, int]],
        partner: str | None,
        note: str | None = None,
    ) -> None:
        program = version.program
        dates = self.e.lot_dates.get((id(program), receipt.date, True))
        available, expires = dates or self._lot_dates(program, receipt.date, pending=True)
        pv, cur = program.point_value, program.currency
        date, tid, number = receipt.date, receipt.transaction_id, version.version
        # Row fields in table order (see ledger.Row); entry_id is the next id.
        if earn > 0:
            self._post(
                _new(Row, (
                    self.e.next_id, date, self.cid, "earn", earn,
                    ledger.points_value(earn, pv, cur), "purchase", tid,
                    ",".join(rule_ids) or None, number, None, available, expires, partner, note,
                ))
            )  # fmt: skip
        for rule_id, points in bonuses:
            self._post(
                _new(Row, (
                    self.e.next_id, date, self.cid, "bonus", points,
                    ledger.points_value(points, pv, cur), "purchase", tid,
                    rule_id, number, None, available, expires, partner, None,
                ))
            )  # fmt: skip

    def _standing_claws(self, receipt: Receipt, program: Program, points: int) -> int:
        """What the scored refunds of `receipt` (refund_of it, not undone) take back
        of `points`, in their order, as `_refund` takes back a receipt's points."""
        net = program.earn.on == "net"
        original = receipt.amount - receipt.tax if net else receipt.amount
        refunds = [
            self.scored[r] for r in self.refunds_of[receipt.transaction_id] if r in self.scored
        ]
        taken = 0
        for refund in sorted(refunds, key=lambda r: (r.date, r.transaction_id)):
            refunded = -(refund.amount - refund.tax if net else refund.amount)
            taken += min(
                max(points - taken, 0),
                proportional_clawback(points, refunded, original, program.earn.rounding),
            )
        return taken

    def _refunds_took(self, tid: str, without: str | None = None) -> int:
        """Points the refunds of receipt `tid` (but `without`) took back from it, net of
        undone ones. A refund that names no other receipt counts all it took: a first
        line of it that named none (or `tid` unknown then) took at the base rate."""
        total = 0
        for refund in self.refunds_of.get(tid, ()):
            if refund == without:
                continue
            took = [(e.kind, e.points, e.note) for e in self.by_source[("purchase", refund)]]
            named = {ledger.refunded_receipt(note) for kind, _, note in took if kind == "clawback"}
            total += ledger.refund_took(took, tid, every=named <= {tid, None})
        return total

    def _remember(
        self,
        receipt: Receipt,
        points: int,
        tier: str | None,
        version: int | None,
        punches: str | None,
        withdrew: str | None = None,
    ) -> None:
        s = Scored(
            receipt.transaction_id,
            self.cid,
            receipt.date,
            receipt.amount,
            receipt.tax,
            len(receipt.lines),
            points,
            tier,
            version,
            punches,
            withdrew,
        )
        self.scored[receipt.transaction_id] = s
        if self.first_fact is None or receipt.date < self.first_fact:
            self.first_fact = receipt.date
        self.out.scored.append(
            (
                s.transaction_id,
                s.customer_id,
                ledger._iso(s.date),
                s.amount,
                s.tax,
                s.lines,
                s.points,
                s.tier,
                s.version,
                s.punches,
                s.withdrew,
                self.e.run_id,
            )
        )

    def _rescore(self, receipt: Receipt, old: Scored) -> None:
        """Lines arrived for a scored receipt: score all active lines by the version
        that scored it (a version applied later does not rewrite it), post the
        difference; a punch card the receipt now matches counts it."""
        self.e.result.receipts += 1
        points, punches, withdrew = old.points, old.punches, old.withdrew
        version = self.e.timeline.by_number[old.version] if old.version is not None else None
        if version is not None and old.amount >= 0 and not receipt.is_refund:
            program = version.program
            level = program.level(old.tier) if old.tier else None
            score = score_receipt(program, receipt, old.tier, tiermod.multiplier(level))
            posted = sum(
                e.points
                for e in self.by_source.get(("purchase", receipt.transaction_id), [])
                if e.kind in ("earn", "bonus", "reversal")
                or (e.kind == "clawback" and e.note == "receipt corrected")
            )
            diff = score.total - posted
            if diff > 0:
                earn, bonuses = self._more(receipt.transaction_id, diff, score.bonuses)
                self._post_score(receipt, version, earn, score.rule_ids, bonuses, score.partner)
            elif diff < 0:
                lots = self._lots_of(receipt.transaction_id)
                self._post(
                    self._entry(
                        date=receipt.date,
                        customer_id=self.cid,
                        kind="clawback",
                        points=diff,
                        value=-ledger.points_value(-diff, program.point_value, program.currency),
                        source_type="purchase",
                        source_id=receipt.transaction_id,
                        program_version=version.version,
                        lot_id=lots[0].entry_id if lots else None,
                        partner=score.partner,
                        note="receipt corrected",
                    )
                )
            points = score.total
            punches = self._punch(receipt, program, old.tier, old.punches)
            if not self.referral_paid and self.row.referred_by:
                # A line that makes the receipt reach min_first_purchase pays the
                # referral as the whole receipt imported at once would have.
                self._referee(receipt, version)
        elif version is not None and old.amount < 0 and receipt.is_refund:
            taken, withdrew = self._rescore_refund(receipt, old, version)
            points -= taken
        self._remember(receipt, points, old.tier, old.version, punches, withdrew)
        for q in self.history.items:
            if q.transaction_id == receipt.transaction_id:
                q.amount, q.points = receipt.amount, points

    def _rescore_refund(
        self, receipt: Receipt, old: Scored, version: ProgramVersion
    ) -> tuple[int, str | None]:
        """Lines came for a refund scored before: it takes back what the whole refund
        takes, at the tier and by the version it was scored at, less what it took
        then, and withdraws the vouchers its new lines return. (The points taken now,
        the vouchers it withdrew as stored.)"""
        level = version.program.level(old.tier) if old.tier else None
        found: list[str] = []
        taken = sum(
            self._refund(part, version, level, found, receipt) for part in _by_original(receipt)
        )
        if old.withdrew is None:
            return taken, None  # scored before schema 10: counts as withdrawing all
        return taken, json.dumps(list(dict.fromkeys(json.loads(old.withdrew) + found)))

    def _more(
        self, tid: str, diff: int, bonuses: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int]]]:
        """The `diff` more points a corrected receipt earns, as the bonus rules it now
        meets beyond what they paid (each a `bonus` entry with its rule, so `explain`
        names it) and the rest as `earn`; all as `earn` if the parts do not add up."""
        paid: dict[str, int] = {}
        for e in self.by_source.get(("purchase", tid), []):
            if e.kind == "bonus" and e.rule_id:
                paid[e.rule_id] = paid.get(e.rule_id, 0) + e.points
        now = dict(bonuses)
        deltas = [(rule, points - paid.get(rule, 0)) for rule, points in bonuses]
        if any(rule not in now for rule in paid) or any(d < 0 for _, d in deltas):
            return diff, []
        extra = [(rule, d) for rule, d in deltas if d > 0]
        earn = diff - sum(d for _, d in extra)
        return (earn, extra) if earn >= 0 else (diff, [])

    def _lots_of(self, tid: str) -> list[Row]:
        """The receipt's lots, earn first: those of its current scoring (an import
        undo's reversal emptied the lots before it; the receipt imported again
        earned new ones, which a claw-back must aim at)."""
        lots: list[Row] = []
        for e in self.by_source.get(("purchase", tid), []):
            if e.kind == "reversal":
                lots = []
            elif e.kind in ("earn", "bonus") and e.points > 0:
                lots.append(e)
        return sorted(lots, key=lambda e: (e.kind != "earn", e.entry_id))

    # ---- refunds
    def _refund(
        self,
        receipt: Receipt,
        version: ProgramVersion,
        level: Any,
        withdrew: list[str],
        whole: Receipt | None = None,
    ) -> int:
        """Post the claw-back of a refund (one original's part of it) and withdraw the
        vouchers it returns a counted line of (their ids added to `withdrew`); the
        points taken back now. `whole`: lines came for this refund, scored before,
        which takes back what all of it takes less what it took then."""
        program = version.program
        original = self.scored.get(receipt.refund_of or "")
        # What this refund took for this part when scored before (0 the first time):
        # all it took when it names one receipt at most (the receipt may have been
        # unknown then, at the base rate, or known, by its note), else by the notes.
        mine = 0
        if whole is not None:
            took = [
                (e.kind, e.points, e.note)
                for e in self.by_source.get(("purchase", receipt.transaction_id), [])
            ]
            mine = ledger.refund_took(
                took,
                receipt.refund_of if original is not None else None,
                every=len(_named(whole)) <= 1,
            )
            if (
                original is None
                and receipt.refund_of
                and ledger.refund_took(took, receipt.refund_of)
            ):
                # It took from its receipt, gone since (an undo): the refund stays netted
                # with it, as when all its lines came before the undo. Its new lines
                # still count for that receipt's vouchers.
                withdrew += _would_withdraw(receipt, program)
                return 0
        lots: list[Row] = []
        of = None  # the receipt the points are taken back for, named in the note
        partner, _ = partner_multiplier(program, receipt.store)
        # A claw-back of a known receipt is that receipt's version's arithmetic,
        # so it carries that version (and its point value).
        made_by = version.version
        if original is not None and original.amount >= 0 and original.version is not None:
            oprog = self.e.timeline.by_number[original.version].program
            made_by, program = original.version, oprog
            tid = of = original.transaction_id
            lots = self._lots_of(tid)
            # The receipt's points as last scored (a correction, or an import undone
            # and made again, leaves lots that no longer count).
            earned = original.points
            # What earlier refunds of this receipt took back, whichever lots paid it
            # (their own receipt's, or others' pending lots), net of undone refunds.
            # Counted by the lots instead, a part paid by another lot was missed and
            # a refund without refund_of that took from this receipt's lot was counted.
            clawed = self._refunds_took(tid, without=receipt.transaction_id)
            net = oprog.earn.on == "net"
            original_amount = original.amount - original.tax if net else original.amount
            refunded = -(receipt.amount - receipt.tax if net else receipt.amount)
            claw = min(
                max(earned - clawed, 0),
                proportional_clawback(earned, refunded, original_amount, oprog.earn.rounding),
            )
            if lots:
                partner = lots[0].partner
            withdrew += self._withdraw_vouchers(original, receipt, oprog)
        elif original is not None and original.amount >= 0:
            # The original is dated before the first program version: it earned
            # nothing, so there is nothing to take back.
            claw = 0
        else:
            claw = base_refund_points(program, receipt, tiermod.multiplier(level))
            if receipt.refund_of:
                # A receipt this customer's run does not know (undone, another
                # member's): its vouchers this refund would withdraw, by the cards of
                # the version in force, so that none comes back open beside it.
                withdrew += _would_withdraw(receipt, program)
        # A late line of a refund scored before: the rest of what the whole refund takes.
        claw = max(claw - mine, 0)
        if claw > 0:
            value = ledger.points_value(claw, program.point_value, program.currency)
            note = f"{ledger.REFUND_OF}{of}" if of is not None else "refund"
            # Inside the return window the points to take back may still be pending
            # (the receipt's bonus lot; all of them for a refund without refund_of):
            # those parts are aimed at the pending lots, one entry each. Left to the
            # first entry they would be a debt beside lots that later expire in full.
            # Every part is the refunded receipt's partner's (the one whose store
            # took the refund without refund_of): it funded the points taken back,
            # whichever lots they come out of.
            posted = 0

            def put(n: int, aimed: int | None, text: str) -> None:
                nonlocal posted
                money = ledger.share(value, posted + n, claw) - ledger.share(value, posted, claw)
                posted += n
                self._post(
                    self._entry(
                        date=receipt.date,
                        customer_id=self.cid,
                        kind="clawback",
                        points=-n,
                        value=-money,
                        source_type="purchase",
                        source_id=receipt.transaction_id,
                        rule_id=None,
                        program_version=made_by,
                        lot_id=aimed,
                        partner=partner,
                        note=text,
                    )
                )

            # What the receipt earned comes back from its own lots first, one entry
            # aimed at each (its earn lot, then its bonus lots, pending ones too): taken
            # from other lots, it would leave the receipt's bonus spendable, also after
            # an undo of the receipt that its standing refund nets against.
            kinds = {lot.entry_id: lot.kind for lot in lots}
            own, rest = ledger.from_lots(self.state, kinds, claw)
            for lot_id, take in own:
                # A bonus lot still pending says so (the earn lot's part never did).
                waits = (
                    kinds[lot_id] != "earn" and self.state.lots[lot_id].available_on > receipt.date
                )
                put(take, lot_id, f"{note}{ledger.STILL_PENDING}" if waits else note)
            if rest > 0:
                # Then the available points (FIFO), then the pending ones, one entry
                # each: left to one entry they would be a debt beside lots that later
                # expire in full.
                for n, pid in ledger.outgoing_parts(self.state, rest, receipt.date):
                    put(n, pid, note if pid is None else f"{note}{ledger.STILL_PENDING}")
        return claw

    # ---- punch cards
    def _punch(
        self, receipt: Receipt, program: Program, tier: str | None, already: str | None = None
    ) -> str | None:
        """Count the receipt on the punch cards it matches (at its tier), issuing a
        voucher on every Nth; the card ids it counts on. `already`: the cards it
        counted on when scored before lines were added, not counted again."""
        cached = self.e.punch_rewards.get(id(program))
        if cached is None or cached[0] is not program:
            cards = [
                (r, r.punch_card, when_plan(program, r.punch_card.when))
                for r in program.rewards
                if r.punch_card is not None
            ]
            cached = self.e.punch_rewards[id(program)] = (program, cards)
        if not cached[1]:
            return None
        punched = [rid for rid in (already or "").split(",") if rid]
        basis = receipt.basis_amount(program.earn.on)
        for reward, card, when in cached[1]:
            if reward.id in punched or not reward.is_active(receipt.date):
                continue
            if not when.matches(receipt, basis, tier):
                continue
            if when.lines:
                # when.line_matches over the lines, inlined (once per receipt and card).
                cats, skus = when.categories, when.skus
                for line in receipt.lines:
                    if (cats is None or line.category in cats) and (
                        skus is None or line.sku in skus
                    ):
                        break
                else:
                    continue
            punched.append(reward.id)
            self.punches[reward.id] += 1
            voucher_id = f"V{receipt.transaction_id}-{reward.id}"
            before = self.e.forgotten.get(receipt.transaction_id)
            if before is not None and before[0] == self.cid and reward.id in before[1]:
                # Counted on this card for this customer before: its voucher, if any.
                issue = voucher_id in before[2]
            else:
                issue = self.punches[reward.id] % card.every == 0
            if issue:
                expires = (
                    receipt.date + dt.timedelta(days=reward.voucher_days)
                    if reward.voucher_days
                    else None
                )
                self.out.vouchers.append(
                    (
                        voucher_id,
                        self.cid,
                        reward.id,
                        receipt.date.isoformat(),
                        receipt.transaction_id,
                        expires.isoformat() if expires else None,
                    )
                )
        return ",".join(punched) or None

    def _withdraw_vouchers(self, original: Scored, refund: Receipt, program: Program) -> list[str]:
        """Withdraw the vouchers of the cards `original` counted on (under `program`,
        the version that scored it) that `refund` returns a counted line of: the shoes
        of a receipt with a coffee leave the coffee card's voucher alone. A refund line
        that does not say its category (or sku) may be the counted one, so it counts as
        one. The ids of the vouchers withdrawn (an open one only is closed: output.write)."""
        cards = {r.id: r.punch_card for r in program.rewards if r.punch_card is not None}
        withdrawn = []
        for rid in (original.punches or "").split(","):
            if rid and _returns_counted_line(refund, program, cards.get(rid)):
                vid = f"V{original.transaction_id}-{rid}"
                self.out.withdrawn.append((refund.date.isoformat(), vid))
                withdrawn.append(vid)
        return withdrawn

    # ---- events and birthdays
    def _event(self, event_id: str, etype: str, date: dt.date) -> None:
        if etype in DERIVED_EVENTS or ("event", event_id) in self.by_source:
            return
        version = self.e.timeline.get(date)
        spec = version.program.bonus_for(etype) if version else None
        if version is None or spec is None or spec.points <= 0:
            return
        earlier = self.event_bonus.get(etype, [])
        if spec.once and earlier:
            return
        if spec.limit is not None:
            key = period_key(date, spec.limit.per)
            if sum(1 for d in earlier if period_key(d, spec.limit.per) == key) >= spec.limit.count:
                return
        self._bonus(date, version, spec.points, "event", event_id, etype)

    def _bonus(
        self,
        date: dt.date,
        version: ProgramVersion,
        points: int,
        source_type: str,
        source_id: str,
        rule_id: str,
        note: str | None = None,
    ) -> None:
        program = version.program
        available, expires = self._lot_dates(program, date, pending=False)
        self._post(
            self._entry(
                date=date,
                customer_id=self.cid,
                kind="bonus",
                points=points,
                value=ledger.points_value(points, program.point_value, program.currency),
                source_type=source_type,
                source_id=source_id,
                rule_id=rule_id,
                program_version=version.version,
                available_on=available,
                expires_on=expires,
                note=note,
            )
        )

    def _birthdays(self) -> list[tuple[dt.date, int, str, Any]]:
        birthday = self.row.birthday
        start = self.row.joined_on or self.first_activity
        if birthday is None or start is None:
            return []
        out = []
        for year in range(max(start.year, birthday.year), self.e.as_of.year + 1):
            day = birthday_in(year, birthday)
            if day < start or day > self.e.as_of:
                continue
            source_id = f"birthday:{self.cid}:{year}"
            if ("event", source_id) not in self.by_source:
                out.append((day, _BIRTHDAY, source_id, None))
        return out

    def _birthday(self, date: dt.date, source_id: str, _: Any) -> None:
        version = self.e.timeline.get(date)
        spec = version.program.bonus_for("birthday") if version else None
        if version is None or spec is None or spec.points <= 0:
            return
        self._bonus(date, version, spec.points, "event", source_id, "birthday")

    # ---- referrals
    def _referee(self, receipt: Receipt | _Sale, version: ProgramVersion) -> None:
        referrer = self.row.referred_by
        referral = version.program.referral
        if self.referral_paid or not referrer or referrer == self.cid or referral is None:
            return
        if receipt.amount < version.program.minor(referral.min_first_purchase):
            return
        if referral.referee <= 0 and referral.referrer <= 0:
            # Nothing to pay: no entry would tell a later run the referral was used, so
            # it is not used (a later version that pays still can).
            return
        self.referral_paid = True
        if referral.referee > 0:
            self._bonus(
                receipt.date,
                version,
                referral.referee,
                "referral",
                self.cid,
                "referral",
                note=f"referred by {referrer}",
            )
        if referral.referrer > 0:
            self.e.referrer_due.setdefault(referrer, []).append(
                (receipt.date, self.cid, referral.referrer, version.version)
            )
        if referral.referee <= 0:
            # Mark it paid on the referee's side too (nothing posted for them).
            self.by_source[("referral", self.cid)] = []

    def _earlier_sale(self, date: dt.date, amount: int, tid: str) -> None:
        """A sale an earlier run scored, looked at again for the referral only: by its
        amount now, if lines came for it in this run (a correction may lower it)."""
        now = self.scored.get(tid)
        if now is not None:
            amount = now.amount
        version = self.e.version_on(date)
        if version is not None and not self.referral_paid:
            self._referee(_Sale(date, amount), version)

    def _referrer(self, date: dt.date, referee: str, points: int, version_no: int) -> None:
        version = self.e.timeline.by_number[version_no]
        self._bonus(
            date, version, points, "referral", referee, "referral", note=f"referred {referee}"
        )


def _less(
    earn: int, bonuses: list[tuple[str, int]], taken: int
) -> tuple[int, list[tuple[str, int]]]:
    """A receipt's earn and bonus points less `taken`, from the earn first."""
    cut = min(earn, taken)
    earn, taken = earn - cut, taken - cut
    kept = []
    for rule, points in bonuses:
        cut = min(points, taken)
        taken -= cut
        if points > cut:
            kept.append((rule, points - cut))
    return earn, kept


class _Sale(NamedTuple):
    """What `_referee` reads of a receipt."""

    date: dt.date
    amount: int


def _returns_counted_line(refund: Receipt, program: Program, card: Any) -> bool:
    """Whether a returned line (a negative amount) of `refund` may be one the punch
    card counted: any when the card looks at no category or sku (or is no longer
    known), else one whose category and sku each match the card or are not given."""
    returned = [line for line in refund.lines if line.amount < 0]
    if not returned:
        return False
    if card is None:
        return True
    when = when_plan(program, card.when)
    if not when.lines:
        return True
    cats, skus = when.categories, when.skus
    return any(
        (cats is None or line.category is None or line.category in cats)
        and (skus is None or line.sku is None or line.sku in skus)
        for line in returned
    )


def _would_withdraw(refund: Receipt, program: Program) -> list[str]:
    """The voucher ids of `refund.refund_of` on the cards of `program` that the
    refund returns a counted line of (see _returns_counted_line)."""
    return [
        f"V{refund.refund_of}-{r.id}"
        for r in program.rewards
        if r.punch_card is not None and _returns_counted_line(refund, program, r.punch_card)
    ]


def _named(refund: Receipt) -> list[str]:
    """The receipts a refund's lines name, in id order (the lines come in no order)."""
    return sorted({line.refund_of for line in refund.lines if line.refund_of})


def _by_original(refund: Receipt) -> list[Receipt]:
    """A refund's lines per receipt they name: a till may take back items of two
    sales in one return, and each sale gives back what its own lines earned. Lines
    naming none go with the first named in id order."""
    named = _named(refund)
    if len(named) < 2:
        return [refund]
    parts = {
        name: Receipt(refund.transaction_id, refund.customer_id, refund.date) for name in named
    }
    for line in refund.lines:
        parts[line.refund_of or named[0]].add(line)
    return [part for part in parts.values() if part.amount < 0]
