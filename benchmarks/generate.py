"""Generate the benchmark data set: a big shop's two years of till exports.

    python benchmarks/generate.py            # 1,000,000 lines, 100,000 customers
    python benchmarks/generate.py --lines 100000 --customers 10000 --out /tmp/bench

Writes (streaming, memory flat in the number of lines) into benchmarks/data/
(git-ignored):

* purchases.csv  - `--lines` purchase lines over two years ending 2026-11-22,
  receipts of 1-4 lines, customers Pareto-skewed (a few buy very often),
  10 % anonymous, about 2 % of receipts refunded 1-30 days later as a row with
  a negative amount and `refund_of`;
* increment.csv  - `--increment` lines dated the next day (2026-11-23): one
  night's export for the nightly increment;
* customers.csv  - the customers, with join dates;
* increment2.csv - as many lines dated the day after (2026-11-24): the second
  night, which meets the indexes as the first night's inserts left them.

Same seed, same files: runs are comparable across machines and commits.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import heapq
import itertools
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
END = dt.date(2026, 11, 22)  # last day of the history; the increment is END + 1
DAYS = 730
CATEGORIES = ("coffee", "pastry", "tops", "trousers", "shoes", "bags", "jewellery", "gifts")
CATEGORY_PRICE = (3.5, 4.0, 35.0, 60.0, 90.0, 70.0, 45.0, 20.0)  # median price per category
STORES = ("S1", "S2", "S3", "S4", "S5")
HEADER = (
    "transaction_id",
    "line_no",
    "customer_id",
    "date",
    "amount",
    "sku",
    "category",
    "store",
    "refund_of",
)
ANONYMOUS = 0.10
REFUND_SHARE = 0.02


class Shop:
    """Random receipts with a fixed seed."""

    def __init__(self, customers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = [f"C{n:06d}" for n in range(1, customers + 1)]
        # Pareto weights (alpha 1.16: the 80/20 shape), capped so the most
        # frequent customer buys about daily rather than 20 times a day.
        weights = [min(self.rng.paretovariate(1.16), 50.0) for _ in self.ids]
        self.cum = list(itertools.accumulate(weights))
        self.receipts = 0

    def customer(self) -> str:
        if self.rng.random() < ANONYMOUS:
            return ""
        point = self.rng.random() * self.cum[-1]
        return self.ids[min(bisect.bisect_left(self.cum, point), len(self.ids) - 1)]

    def receipt(self, day: dt.date, prefix: str = "R") -> tuple[str, str, list[tuple]]:
        """(transaction_id, customer_id, rows) for one sale receipt."""
        self.receipts += 1
        tid = f"{prefix}{self.receipts:08d}"
        customer = self.customer()
        store = self.rng.choice(STORES)
        rows = []
        for line_no in range(1, self.rng.choice((1, 1, 1, 2, 2, 3, 4)) + 1):
            cat = self.rng.randrange(len(CATEGORIES))
            price = CATEGORY_PRICE[cat] * self.rng.lognormvariate(0, 0.35)
            cents = max(50, round(price * 100))
            sku = f"{CATEGORIES[cat][:3].upper()}{self.rng.randrange(200):03d}"
            rows.append(
                (tid, line_no, customer, day.isoformat(), _money(cents), sku, CATEGORIES[cat],
                 store, "")
            )  # fmt: skip
        return tid, customer, rows


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def write_purchases(path: Path, shop: Shop, lines: int, days: int = DAYS) -> int:
    """`lines` rows spread evenly over `days` days ending END; returns rows written."""
    start = END - dt.timedelta(days=days - 1)
    refunds: list[tuple[str, int, tuple]] = []  # heap of (date, seq, row) waiting to be written
    seq = itertools.count()
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(HEADER)
        for d in range(days):
            day = start + dt.timedelta(days=d)
            quota = round(lines * (d + 1) / days) - written
            iso = day.isoformat()
            while refunds and refunds[0][0] <= iso and quota > 0:
                out.writerow(heapq.heappop(refunds)[2])
                written += 1
                quota -= 1
            while quota > 0:
                tid, customer, rows = shop.receipt(day)
                rows = rows[:quota]
                out.writerows(rows)
                written += len(rows)
                quota -= len(rows)
                if shop.rng.random() < REFUND_SHARE:
                    when = day + dt.timedelta(days=shop.rng.randint(1, 30))
                    if when <= END:
                        total = sum(round(float(r[4]) * 100) for r in rows)
                        part = total if shop.rng.random() < 0.6 else total // 2
                        row = (f"F{tid[1:]}", 1, customer, when.isoformat(), _money(-part),
                               "", "", rows[0][7], tid)  # fmt: skip
                        heapq.heappush(refunds, (when.isoformat(), next(seq), row))
    return written


def write_increment(path: Path, shop: Shop, lines: int, night: int = 1) -> int:
    day = END + dt.timedelta(days=night)
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(HEADER)
        while written < lines:
            _, _, rows = shop.receipt(day, prefix="N")
            rows = rows[: lines - written]
            out.writerows(rows)
            written += len(rows)
    return written


def write_customers(path: Path, shop: Shop) -> int:
    start = END - dt.timedelta(days=DAYS - 1)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(("customer_id", "name", "email", "joined_on"))
        for n, cid in enumerate(shop.ids):
            joined = start + dt.timedelta(days=shop.rng.randrange(DAYS))
            out.writerow((cid, f"Customer {n + 1}", f"c{n + 1}@example.com", joined.isoformat()))
    return len(shop.ids)


def generate(
    out: Path = DATA,
    lines: int = 1_000_000,
    customers: int = 100_000,
    increment: int = 10_000,
    seed: int = 20261123,
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    shop = Shop(customers, seed)
    paths = {
        "purchases": out / "purchases.csv",
        "increment": out / "increment.csv",
        "customers": out / "customers.csv",
        "increment2": out / "increment2.csv",
    }
    write_purchases(paths["purchases"], shop, lines)
    write_increment(paths["increment"], shop, increment)
    write_customers(paths["customers"], shop)
    # Last, so the files above stay what they were before it existed.
    write_increment(paths["increment2"], shop, increment, night=2)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA, help="directory (default %(default)s)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--increment", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    paths = generate(args.out, args.lines, args.customers, args.increment, args.seed)
    for name, path in paths.items():
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
