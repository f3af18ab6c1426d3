"""Redeeming a reward at the counter, and giving one back.

Check and debit happen in ONE transaction that takes the write lock before
anything is read (`db.transaction` is BEGIN IMMEDIATE): two tills racing for
the same last points queue on the lock, and the second one sees the first
one's debit, so only one can win.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from typing import Any

from loyalty_cli import db, ledger
from loyalty_cli.errors import ConflictError, NotFoundError, RedemptionError, UsageError
from loyalty_cli.money import format_minor
from loyalty_cli.rewards.common import (
    check_posting_date,
    find_reward,
    require_customer,
    version_on,
    version_or_none,
)
from loyalty_cli.rewards.eligibility import (
    NOT_ACTIVE,
    TIER_TOO_LOW,
    load_facts,
    voucher_reward,
)
from loyalty_cli.rewards.vouchers import REFUND_SCORED, oldest_open_voucher

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: a code a person reads off a screen and types.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
_SEQ_KEY = "redemption_seq"
_COLUMNS = (
    "redemption_id, customer_id, reward_id, date, points, value, status, ref, code, "
    "balance_after, voucher_id, partner, import_id, cancelled_on"
)


def redemption_code(redemption_id: str) -> str:
    """A short code a till can type, derived from the id (so it can be re-derived)."""
    number = int.from_bytes(hashlib.sha256(f"loyalty:{redemption_id}".encode()).digest(), "big")
    chars = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(CODE_ALPHABET))
        chars.append(CODE_ALPHABET[digit])
    return "".join(chars)


def _next_redemption_id(conn: sqlite3.Connection) -> str:
    """R000001, R000002, ...: a counter in meta, so an id is never handed out twice."""
    number = int(db.get_meta(conn, _SEQ_KEY, "0") or 0)
    while True:
        number += 1
        candidate = f"R{number:06d}"
        taken = conn.execute(
            "SELECT 1 FROM redemptions WHERE redemption_id = ?", (candidate,)
        ).fetchone()
        if not taken:
            db.set_meta(conn, _SEQ_KEY, str(number))
            return candidate


def _currency_on(conn: sqlite3.Connection, on: dt.date) -> str:
    version = version_or_none(conn, on)
    return version.program.currency if version else "EUR"


def redemption_dict(conn: sqlite3.Connection, row: sqlite3.Row | dict) -> dict[str, Any]:
    """The contract's JSON shape of a redemption."""
    currency = _currency_on(conn, dt.date.fromisoformat(row["date"]))
    return {
        "redemption_id": row["redemption_id"],
        "customer_id": row["customer_id"],
        "reward_id": row["reward_id"],
        "points": row["points"],
        "value": format_minor(row["value"], currency),
        "date": row["date"],
        "balance_after": row["balance_after"],
    }


def get_redemption(conn: sqlite3.Connection, redemption_id: str) -> sqlite3.Row:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM redemptions WHERE redemption_id = ?", (redemption_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown redemption {redemption_id}")
    return row


def redeem(
    conn: sqlite3.Connection,
    customer_id: str,
    reward_id: str,
    on: dt.date,
    ref: str | None = None,
    redemption_id: str | None = None,
    import_id: int | None = None,
    latest: dt.date | None = None,
) -> dict[str, Any]:
    """Redeem a reward for a customer on a date; RedemptionError says why not.

    `ref`: an idempotency key from the till; the same key again returns the
    first redemption unchanged (whatever the reward or date) and posts
    nothing; for another customer it is refused. `redemption_id`: use this id
    (imports from the till) instead of the next generated one. `latest`: the
    last day it may be dated (common.posting_limit); a later day is refused after
    "not active" and "tier too low", before the balance and limits of that day.
    """
    if ref is not None and not ref.strip():
        # A till script whose receipt number came out empty would otherwise turn
        # every later redemption into a replay of the first.
        raise UsageError("--ref is empty: give the till's key, or leave --ref out")
    with db.transaction(conn):
        if ref is not None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM redemptions WHERE ref = ?", (ref,))
            first = row.fetchone()
            if first is not None:
                if first["customer_id"] != customer_id:
                    # A retry is the same customer's: another customer's redemption
                    # under this key would tell the till a redemption was made for them.
                    raise ConflictError(
                        f"ref {ref} is redemption {first['redemption_id']} of customer "
                        f"{first['customer_id']}, not of {customer_id}; use a new key"
                    )
                return redemption_dict(conn, first)
        if redemption_id is not None:
            exists = conn.execute(
                "SELECT 1 FROM redemptions WHERE redemption_id = ?", (redemption_id,)
            ).fetchone()
            if exists:
                raise ConflictError(f"redemption {redemption_id} already exists")
        require_customer(conn, customer_id)
        version = version_on(conn, on)
        program = version.program
        reward = program.reward(reward_id) or voucher_reward(conn, customer_id, reward_id, on)
        if reward is None:
            reward = find_reward(program, reward_id)  # raises: unknown reward
        facts = load_facts(conn, program, customer_id, on, posting=True)
        reason = facts.refusal(program, reward, customer_id)
        # A day to come is said before the reasons that depend on the balance and
        # the limits on that day (taken on a mistyped date, they would mislead),
        # after those that hold whatever the day's balance: not active, tier.
        if latest is not None and (
            reason is None or not reason.startswith((NOT_ACTIVE, TIER_TOO_LOW))
        ):
            check_posting_date(on, latest)
        if reason is not None:
            raise RedemptionError(reason)

        rid = redemption_id or _next_redemption_id(conn)
        value = program.minor(reward.value)
        available = facts.available.get(customer_id, 0)
        voucher_id = None
        if reward.punch_card is not None:
            # A punch-card voucher: the oldest open one, no points.
            points = 0
            voucher_id = oldest_open_voucher(conn, customer_id, reward.id, on)
            if voucher_id is None:  # pragma: no cover - refusal() checked it
                raise RedemptionError(f"no open voucher: {customer_id} has none for {reward.id}")
            conn.execute(
                "UPDATE vouchers SET status = 'used', closed_on = ?, redemption_id = ? "
                "WHERE voucher_id = ?",
                (on.isoformat(), rid, voucher_id),
            )
        else:
            points = reward.points_cost
            ledger.post(
                conn,
                [
                    ledger.NewEntry(
                        date=on,
                        customer_id=customer_id,
                        kind="redeem",
                        points=-points,
                        value=-ledger.points_value(points, program.point_value, program.currency),
                        source_type="redemption",
                        source_id=rid,
                        rule_id=reward.id,
                        program_version=version.version,
                        partner=reward.partner,
                    )
                ],
            )
        # The redeem took `points` from lots usable on `on` (refusal() made sure
        # they were there), so what is left usable is exactly this.
        balance_after = available - points
        conn.execute(
            "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, "
            "value, status, ref, code, balance_after, voucher_id, partner, import_id, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)",
            (
                rid,
                customer_id,
                reward.id,
                on.isoformat(),
                points,
                value,
                ref,
                redemption_code(rid),
                balance_after,
                voucher_id,
                reward.partner,
                import_id,
                dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            ),
        )
        return redemption_dict(conn, get_redemption(conn, rid))


def cancel_redemption(conn: sqlite3.Connection, redemption_id: str, on: dt.date) -> dict[str, Any]:
    """Give an unused reward back: its points return to the lots they came from.

    Posts `redemption_reversed` dated `on` (nothing is back-dated). The points
    go back to exactly the lots the redemption took them from, with those
    lots' expiry dates; points that come back into a lot that has already
    expired by `on` are expired at once by an `expire` entry dated `on`. A
    voucher redemption reopens its voucher.
    """
    with db.transaction(conn):
        row = get_redemption(conn, redemption_id)
        if row["status"] == "cancelled":
            raise ConflictError(
                f"redemption {redemption_id} was already cancelled on {row['cancelled_on']}"
            )
        if on.isoformat() < row["date"]:
            raise ConflictError(
                f"redemption {redemption_id} was made on {row['date']}; "
                f"it cannot be cancelled on an earlier date ({on.isoformat()})"
            )
        customer_id = row["customer_id"]
        returned = expired = 0
        debits = conn.execute(
            "SELECT SUM(points), SUM(value), MAX(program_version), MAX(partner) FROM ledger "
            "WHERE customer_id = ? AND source_type = 'redemption' AND source_id = ?",
            (customer_id, redemption_id),
        ).fetchone()
        net, net_value, version_no, partner = debits
        if net:  # points still out (a voucher redemption has none)
            before = ledger.replay(ledger.entries_for(conn, customer_id))
            taken = dict(before.taken.get(redemption_id, {}))
            ledger.post(
                conn,
                [
                    ledger.NewEntry(
                        date=on,
                        customer_id=customer_id,
                        kind="redemption_reversed",
                        points=-net,
                        value=-(net_value or 0),
                        source_type="redemption",
                        source_id=redemption_id,
                        rule_id=row["reward_id"],
                        program_version=version_no,
                        partner=partner,
                        note=f"cancellation of {redemption_id}",
                    )
                ],
            )
            returned = -net
            expired = _expire_returned(conn, customer_id, taken, on, redemption_id)
        if row["voucher_id"]:
            gone = _voucher_gone(conn, row["voucher_id"])
            conn.execute(
                "UPDATE vouchers SET status = ?, closed_on = ?, redemption_id = NULL "
                "WHERE voucher_id = ?",
                (
                    "withdrawn" if gone else "open",
                    on.isoformat() if gone else None,
                    row["voucher_id"],
                ),
            )
        conn.execute(
            "UPDATE redemptions SET status = 'cancelled', cancelled_on = ? WHERE redemption_id = ?",
            (on.isoformat(), redemption_id),
        )
        from loyalty_cli.engine.statement import counter_available

        available = counter_available(conn, customer_id, on)
        out = redemption_dict(conn, get_redemption(conn, redemption_id))
        del out["balance_after"]
        out.update(
            {
                "status": "cancelled",
                "cancelled_on": on.isoformat(),
                "points_returned": returned,
                "points_expired": expired,
                "available": available,
            }
        )
        return out


def _expire_returned(
    conn: sqlite3.Connection,
    customer_id: str,
    taken: dict[int, int],
    on: dt.date,
    redemption_id: str,
) -> int:
    """Expire at once what came back into lots already expired by `on`: a lot past
    its fixed expiry date, or a lot available by the date of an inactivity expiry
    posted since the redemption (it took every point available then)."""
    state = ledger.replay(ledger.entries_for(conn, customer_id))
    version = version_or_none(conn, on)
    inactive = _inactivity_expired_since(conn, customer_id, redemption_id)
    entries = []
    for lot_id, amount in sorted(taken.items()):
        lot = state.lots.get(lot_id)
        if lot is None:
            continue
        if lot.expires_on is not None and lot.expires_on <= on:
            why = f"expired on {lot.expires_on.isoformat()}"
        elif inactive is not None and lot.available_on <= inactive:
            why = f"expired by inactivity on {inactive.isoformat()}"
        else:
            continue
        points = min(amount, lot.remaining)
        if points <= 0:
            continue
        value = (
            ledger.points_value(points, version.program.point_value, version.program.currency)
            if version
            else 0
        )
        entries.append(
            ledger.NewEntry(
                date=on,
                customer_id=customer_id,
                kind="expire",
                points=-points,
                value=-value,
                source_type="expiry",
                source_id=str(lot_id),
                program_version=version.version if version else None,
                lot_id=lot_id,
                partner=lot.partner,
                note=f"{why}; returned by cancellation of {redemption_id}",
            )
        )
    ledger.post(conn, entries)
    return sum(-e.points for e in entries)


def _inactivity_expired_since(
    conn: sqlite3.Connection, customer_id: str, redemption_id: str
) -> dt.date | None:
    """The latest date of an inactivity expiry posted after the redemption, if any.
    By posting order, not by date: it took every point available on its date,
    these too had they not been redeemed (when their lot was available by then),
    and a run never looks at a posted inactivity expiry again (an undo can post
    one dated before the redemption; a cancellation may be dated before one
    already posted)."""
    row = conn.execute(
        "SELECT x.date FROM ledger x WHERE x.customer_id = ? AND x.kind = 'expire' "
        "AND x.source_type = 'expiry' AND x.source_id LIKE 'inactivity:%' "
        "AND x.entry_id > (SELECT MIN(entry_id) FROM ledger WHERE customer_id = ? "
        "AND kind = 'redeem' AND source_type = 'redemption' AND source_id = ?) "
        "ORDER BY x.date DESC LIMIT 1",
        (customer_id, customer_id, redemption_id),
    ).fetchone()
    return dt.date.fromisoformat(row[0]) if row else None


def _voucher_gone(conn: sqlite3.Connection, voucher_id: str) -> bool:
    """Whether the receipt that earned a punch-card voucher no longer earns it for
    its customer: it is not scored for them with that punch (its import undone, its
    punched lines undone, the receipt now someone else's), or a refund of it has
    been scored. Either withdraws an open voucher; one in use then escaped, so a
    cancelled redemption gives it back withdrawn, not open (the run that scores
    the receipt again reopens it if it earns it again)."""
    row = conn.execute(
        f"""
        SELECT NOT EXISTS (SELECT 1 FROM scored_receipts s
                           WHERE s.transaction_id = v.transaction_id
                             AND s.customer_id = v.customer_id
                             AND ',' || COALESCE(s.punches, '') || ',' LIKE
                                 '%,' || v.reward_id || ',%')
               OR {REFUND_SCORED}
        FROM vouchers v WHERE v.voucher_id = ? AND v.transaction_id IS NOT NULL
        """,
        (voucher_id,),
    ).fetchone()
    return bool(row and row[0])
