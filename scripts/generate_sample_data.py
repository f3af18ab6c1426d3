#!/usr/bin/env python3
"""Generate the sample shop in sample_data/ (deterministic for a given --seed).

A small café-bakery with a gift and book corner, two stores (S1, S2), 18 months
of history ending 2026-10-31:

* customers.csv  ~1,000 members (names, e-mails, some birthdays, some referred
  by another member, joined_on);
* purchases.csv  ~20,000 receipt lines: multi-line receipts, ~15 % anonymous
  sales, ~2 % refunds (with refund_of), Pareto-skewed visit frequency and
  some members lapsing;
* events.csv     signup, newsletter, review and social_follow events;
* purchases-fi.csv  200 lines exported by a Finnish till (; , %d.%m.%Y,
  UTF-8 with BOM, CRLF, "1 234,50") for programs/fi-pos.yaml.

Standard library only.  Usage: python scripts/generate_sample_data.py [--seed 42] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

START = dt.date(2025, 5, 1)
END = dt.date(2026, 10, 31)
DAYS = (END - START).days
N_CUSTOMERS = 1000
TARGET_LINES = 20_000
ANON_SHARE = 0.15
REFUND_SHARE = 0.02

FIRST = [
    "Aino",
    "Eino",
    "Helmi",
    "Onni",
    "Aada",
    "Leo",
    "Emma",
    "Elias",
    "Sofia",
    "Oliver",
    "Venla",
    "Väinö",
    "Lilja",
    "Eetu",
    "Ella",
    "Niilo",
    "Olivia",
    "Toivo",
    "Isla",
    "Veeti",
    "Maria",
    "Juho",
    "Anna",
    "Mikael",
    "Laura",
    "Ville",
    "Sara",
    "Matti",
    "Noora",
    "Jussi",
    "Liam",
    "Chloé",
    "José",
    "Zoë",
    "Björn",
    "Åsa",
    "Siiri",
    "Kalle",
    "Iida",
    "Otto",
]
LAST = [
    "Virtanen",
    "Korhonen",
    "Mäkinen",
    "Nieminen",
    "Mäkelä",
    "Hämäläinen",
    "Laine",
    "Heikkinen",
    "Koskinen",
    "Järvinen",
    "Lehtonen",
    "Lehtinen",
    "Saarinen",
    "Salminen",
    "Heinonen",
    "Niemi",
    "Heikkilä",
    "Kinnunen",
    "Salonen",
    "Turunen",
    "Smith",
    "García",
    "Müller",
    "O'Brien",
    "Nguyen",
    "Andersson",
]
_ASCII = str.maketrans({"ä": "a", "ö": "o", "å": "a", "é": "e", "ë": "e", "'": ""})

# category -> [(sku, unit price, VAT rate)]
CATALOGUE = {
    "coffee": [("COF-ESP", "2.80"), ("COF-LAT", "4.20"), ("COF-CAP", "3.90"), ("COF-FIL", "2.50")],
    "pastry": [("PAS-CRO", "3.20"), ("PAS-CIN", "3.50"), ("PAS-MUF", "3.00")],
    "bread": [("BRD-RYE", "4.90"), ("BRD-SOUR", "6.50"), ("BRD-BAG", "2.20")],
    "gifts": [("GFT-MUG", "14.90"), ("GFT-TOTE", "19.00"), ("GFT-CARD", "25.00")],
    "books": [("BK-COOK", "29.90"), ("BK-NOVEL", "18.50")],
}
CATEGORY_WEIGHTS = {"coffee": 40, "pastry": 25, "bread": 20, "gifts": 9, "books": 6}
VAT = {"coffee": "0.14", "pastry": "0.14", "bread": "0.14", "gifts": "0.255", "books": "0.10"}
LINES_PER_RECEIPT = ([1, 2, 3, 4], [50, 25, 15, 10])

PURCHASE_COLUMNS = [
    "transaction_id", "line_no", "customer_id", "date", "amount", "sku", "category",
    "quantity", "store", "currency", "tax", "refund_of",
]  # fmt: skip
CENT = Decimal("0.01")


def _day(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randint(0, max(0, (hi - lo).days)))


def make_customers(rng: random.Random) -> list[dict[str, str]]:
    customers = []
    for i in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # early members joined at launch, the rest trickle in
        joined = START if rng.random() < 0.25 else _day(rng, START, END - dt.timedelta(days=7))
        birthday = ""
        if rng.random() < 0.6:
            birthday = _day(rng, dt.date(1950, 1, 1), dt.date(2006, 12, 31)).isoformat()
        local = f"{first}.{last}".lower().translate(_ASCII)
        customers.append(
            {
                "customer_id": f"C{i:04d}",
                "name": f"{first} {last}",
                "email": f"{local}{i}@example.com" if rng.random() < 0.9 else "",
                "birthday": birthday,
                "joined_on": joined.isoformat(),
                "referred_by": "",
            }
        )
    customers.sort(key=lambda c: (c["joined_on"], c["customer_id"]))
    for n, c in enumerate(customers):
        if n > 20 and rng.random() < 0.1:
            c["referred_by"] = customers[rng.randrange(n)]["customer_id"]
    customers.sort(key=lambda c: c["customer_id"])
    return customers


def _line(rng: random.Random, category: str) -> tuple[str, str, int, Decimal, Decimal]:
    sku, price = rng.choice(CATALOGUE[category])
    qty = rng.choices([1, 2, 3], [80, 15, 5])[0] if category in ("coffee", "pastry") else 1
    amount = Decimal(price) * qty
    rate = Decimal(VAT[category])
    tax = (amount * rate / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
    return sku, category, qty, amount, tax


def make_purchases(rng: random.Random, customers: list[dict[str, str]]) -> list[dict[str, str]]:
    mean_lines = sum(n * w for n, w in zip(*LINES_PER_RECEIPT, strict=True)) / 100
    receipts_total = int(TARGET_LINES / mean_lines / (1 + REFUND_SHARE))
    member_receipts = int(receipts_total * (1 - ANON_SHARE))
    # Pareto-skewed visit frequency: a few regulars, a long tail of rare visitors;
    # every member buys at least once, and about one in four only once.
    weights = [rng.paretovariate(1.3) - 1 for _ in customers]
    scale = (member_receipts - len(customers)) / sum(weights)
    visits: list[tuple[dt.date, str]] = []
    for c, w in zip(customers, weights, strict=True):
        n = 1 + int(w * scale + rng.random())
        joined = dt.date.fromisoformat(c["joined_on"])
        last = END
        if rng.random() < 0.3:  # lapsing: stops coming somewhere along the way
            last = _day(rng, joined, END)
        visits += [(_day(rng, joined, last), c["customer_id"]) for _ in range(n)]
    visits += [(_day(rng, START, END), "") for _ in range(receipts_total - len(visits))]
    visits.sort()
    categories = list(CATEGORY_WEIGHTS)
    cat_weights = list(CATEGORY_WEIGHTS.values())
    rows: list[dict[str, str]] = []
    for n, (day, customer) in enumerate(visits, start=1):
        store = "S1" if rng.random() < 0.7 else "S2"
        for line_no in range(1, rng.choices(*LINES_PER_RECEIPT)[0] + 1):
            sku, cat, qty, amount, tax = _line(rng, rng.choices(categories, cat_weights)[0])
            rows.append(
                {
                    "transaction_id": f"R{n:06d}",
                    "line_no": str(line_no),
                    "customer_id": customer,
                    "date": day.isoformat(),
                    "amount": str(amount),
                    "sku": sku,
                    "category": cat,
                    "quantity": str(qty),
                    "store": store,
                    "currency": "EUR",
                    "tax": str(tax),
                    "refund_of": "",
                }  # fmt: skip
            )
    # Refunds: a line of an earlier receipt comes back within two weeks.
    refunds = []
    for k, i in enumerate(sorted(rng.sample(range(len(rows)), int(len(rows) * REFUND_SHARE)))):
        orig = rows[i]
        day = min(END, dt.date.fromisoformat(orig["date"]) + dt.timedelta(rng.randint(0, 14)))
        refunds.append(
            {
                **orig,
                "transaction_id": f"F{k + 1:05d}",
                "line_no": "1",
                "date": day.isoformat(),
                "amount": str(-Decimal(orig["amount"])),
                "tax": str(-Decimal(orig["tax"])),
                "refund_of": orig["transaction_id"],
            }  # fmt: skip
        )
    rows += refunds
    rows.sort(key=lambda r: (r["date"], r["transaction_id"], int(r["line_no"])))
    return rows


def make_events(rng: random.Random, customers: list[dict[str, str]]) -> list[dict[str, str]]:
    events: list[tuple[str, str, str]] = []
    for c in customers:
        joined = dt.date.fromisoformat(c["joined_on"])
        events.append((c["joined_on"], c["customer_id"], "signup"))
        if c["email"] and rng.random() < 0.4:
            day = min(END, joined + dt.timedelta(days=rng.randint(0, 30)))
            events.append((day.isoformat(), c["customer_id"], "newsletter"))
        if rng.random() < 0.2:
            events.append((_day(rng, joined, END).isoformat(), c["customer_id"], "social_follow"))
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 3)):
                events.append((_day(rng, joined, END).isoformat(), c["customer_id"], "review"))
    events.sort()
    return [
        {"event_id": f"E{n:06d}", "customer_id": cid, "type": kind, "date": day}
        for n, (day, cid, kind) in enumerate(events, start=1)
    ]


FI_COLUMNS = ["Kuitti", "Rivi", "Asiakas", "Pvm", "Summa", "Tuote", "Tuoteryhmä", "Myymälä", "ALV"]
FI_CATALOGUE = [
    ("kahvi", "KAH-1", "2.90"), ("pulla", "PUL-KORV", "3.40"), ("leipä", "LEI-RUIS", "5.20"),
    ("leipä", "LEI-SAARI", "6.80"), ("lahjat", "LAH-KORI", "89.00"),
    ("pitopalvelu", "PITO-1", "1240.50"),
]  # fmt: skip


def _fi_money(value: Decimal) -> str:
    """1234.50 -> '1 234,50' (no-break space grouping, as Finnish tills print it)."""
    sign = "-" if value < 0 else ""
    whole, cents = f"{abs(value):.2f}".split(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + "\u00a0".join(groups) + "," + cents


def make_purchases_fi(rng: random.Random) -> list[list[str]]:
    rows: list[list[str]] = []
    n = 0
    while len(rows) < 200:
        n += 1
        day = _day(rng, dt.date(2026, 9, 1), END)
        customer = "" if rng.random() < 0.15 else f"A{rng.randint(1, 60):03d}"
        store = rng.choice(["M1", "M2"])
        for line_no in range(1, rng.choices([1, 2, 3], [60, 30, 10])[0] + 1):
            if len(rows) >= 200:
                break
            cat, sku, price = rng.choices(FI_CATALOGUE, [30, 25, 25, 12, 6, 2])[0]
            amount = Decimal(price)
            rate = Decimal("0.14") if cat != "lahjat" else Decimal("0.255")
            tax = (amount * rate / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
            rows.append(
                [f"K{n:05d}", str(line_no), customer, day.strftime("%d.%m.%Y"),
                 _fi_money(amount), sku, cat, store, _fi_money(tax)]
            )  # fmt: skip
    return rows


COALITION_STORES = {"S1": "coffee", "S2": "coffee", "B1": "bread", "K1": "books"}


def make_purchases_coalition(rng: random.Random) -> list[dict[str, str]]:
    """Three neighbouring shops (programs/coalition.yaml): 60 members, October 2026."""
    rows: list[dict[str, str]] = []
    start = dt.date(2026, 10, 1)
    for n in range(1, 301):
        store = rng.choice(["S1", "S1", "S2", "B1", "B1", "K1"])
        day = start + dt.timedelta(days=rng.randrange(31))
        low, high = (3, 12) if store != "K1" else (9, 45)
        amount = Decimal(rng.randrange(low * 100, high * 100)) / 100
        rows.append(
            {
                "transaction_id": f"K{n:05d}",
                "customer_id": f"M{rng.randrange(1, 61):03d}",
                "date": day.isoformat(),
                "amount": f"{amount:.2f}",
                "category": COALITION_STORES[store],
                "store": store,
            }
        )
    rows.sort(key=lambda r: (r["date"], r["transaction_id"]))
    return rows


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "sample_data")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    customers = make_customers(rng)
    purchases = make_purchases(rng, customers)
    events = make_events(rng, customers)
    write_csv(args.out / "customers.csv", list(customers[0]), customers)
    write_csv(args.out / "purchases.csv", PURCHASE_COLUMNS, purchases)
    write_csv(args.out / "events.csv", ["event_id", "customer_id", "type", "date"], events)
    with open(args.out / "purchases-fi.csv", "w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow(FI_COLUMNS)
        writer.writerows(make_purchases_fi(rng))
    coalition = make_purchases_coalition(random.Random(args.seed + 1))
    write_csv(args.out / "purchases-coalition.csv", list(coalition[0]), coalition)
    print(
        f"{args.out}: {len(customers)} customers, {len(purchases)} purchase lines, "
        f"{len(events)} events, 200 Finnish purchase lines (seed {args.seed})"
    )


if __name__ == "__main__":
    main()
