"""Time `loyalty` against `sqlite3 .import` and `sqlite-utils insert` on one file.

    make bench                                   # or:
    .venv/bin/python benchmarks/run.py [--profile] [--data DIR]

Generates benchmarks/data/ first if it is missing (benchmarks/generate.py), then
times, each in a child process on the same file in the same run:

* `sqlite3 .import` into a fresh file (the baseline), `sqlite-utils insert --csv`,
  pandas `read_csv(...).to_sql` (only if pandas happens to be installed);
* `loyalty import purchases` (and the same on the first 10 % of the file, to see
  whether peak memory is flat in file size), `loyalty run`;
* the nightly increment: importing 10,000 new lines and running on top, as two
  commands and as one `loyalty nightly`, and a second night on top of it;
* `loyalty report kpi` over a month.

Peak memory is the child's ru_maxrss (os.wait4). With --profile the import and
run of the 10 % file are repeated under cProfile and the top functions printed.
Prints a markdown table (seconds, ratio to sqlite3 .import, peak MiB, target).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import io
import os
import pstats
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from generate import DATA, END, generate  # noqa: E402

PROGRAM = ROOT / "programs" / "boutique.yaml"
AS_OF = END.isoformat()
NEXT_DAY = "2026-11-23"


@dataclass
class Timing:
    seconds: float
    peak_mib: float
    code: int
    cpu: float = 0.0  # user + system seconds of the child and the workers it waited for


def timed(cmd: list[str], stdin: bytes | None = None, cwd: Path | None = None) -> Timing:
    """Run a child; wall seconds and its own peak RSS."""
    os.sync()  # the previous step's dirty pages are not written back on this one's clock
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        print(f"  ! {' '.join(cmd[:6])} ... exited {proc.returncode}: {err.decode()[-500:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Timing(seconds, usage.ru_maxrss / 1024, proc.returncode, cpu)


def loyalty(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "loyalty_cli", "--db", str(db), *args]


def fresh_loyalty_db(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    subprocess.run(
        loyalty(path, "program", "apply", str(PROGRAM), "--effective", "2024-01-01"),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path


def head(src: Path, dest: Path, share: float) -> Path:
    """The first `share` of src's lines (header kept)."""
    with open(src, encoding="utf-8") as fh:
        total = sum(1 for _ in fh) - 1
    keep = int(total * share)
    with open(src, encoding="utf-8") as fh, open(dest, "w", encoding="utf-8") as out:
        for i, line in enumerate(fh):
            if i > keep:
                break
            out.write(line)
    return dest


def profile(db: Path, out: Path, *args: str) -> str:
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "loyalty_cli", "--db", str(db),
         *args],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("tottime").print_stats(15)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--profile", action="store_true", help="cProfile import and run")
    args = parser.parse_args()

    data: Path = args.data
    purchases, increment = data / "purchases.csv", data / "increment.csv"
    increment2 = data / "increment2.csv"
    if not purchases.exists() or not increment.exists() or not increment2.exists():
        print(f"generating {data} ...")
        generate(data)
    # Byte-code for the sources, as a (non-editable) pip install writes it: the editable
    # install of the venv leaves that to the first run, and PYTHONDONTWRITEBYTECODE
    # (set on some machines) to never, so every command would compile ~14k lines first.
    compileall.compile_dir(ROOT / "src", quiet=1)
    work = data / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open(purchases, encoding="utf-8") as fh:
        lines = sum(1 for _ in fh) - 1
    size = purchases.stat().st_size / 2**20
    print(f"file: {purchases} ({lines:,} lines, {size:.1f} MiB)\n")
    rows: list[tuple[str, Timing | None, str]] = []

    def step(name: str, timing: Timing | None, target: str = "") -> Timing | None:
        rows.append((name, timing, target))
        shown = (
            f"{timing.seconds:8.2f} s  {timing.cpu:7.2f} s CPU  {timing.peak_mib:7.1f} MiB"
            if timing
            else "  skipped"
        )
        print(f"{name:<44} {shown}", flush=True)
        return timing

    sqlite3_bin = shutil.which("sqlite3")
    base = None
    if sqlite3_bin:
        script = f".mode csv\n.import '{purchases}' purchases\n".encode()
        base = step("sqlite3 .import", timed([sqlite3_bin, str(work / "sqlite3.db")], script))
    else:
        step("sqlite3 .import (not installed: apt-get install sqlite3)", None)
    sqlite_utils = Path(sys.executable).parent / "sqlite-utils"
    step(
        "sqlite-utils insert --csv",
        timed([str(sqlite_utils), "insert", str(work / "su.db"), "purchases", str(purchases),
               "--csv"]),
    )  # fmt: skip
    if importlib.util.find_spec("pandas"):
        code = (
            "import sqlite3, sys, pandas as pd\n"
            "con = sqlite3.connect(sys.argv[2])\n"
            "for chunk in pd.read_csv(sys.argv[1], chunksize=100_000, dtype=str):\n"
            "    chunk.to_sql('purchases', con, if_exists='append', index=False)\n"
            "con.commit()\n"
        )
        step("pandas read_csv + to_sql", timed([sys.executable, "-c", code, str(purchases),
                                                str(work / "pd.db")]))  # fmt: skip
    else:
        step("pandas to_sql (not installed)", None)

    db = fresh_loyalty_db(work / "loyalty.db")
    imp = step(
        "loyalty import purchases",
        timed(loyalty(db, "import", "purchases", str(purchases), "--quiet")),
        "<= 2.5 x sqlite3, peak < 150 MiB",
    )
    small = head(purchases, work / "head10.csv", 0.10)
    small_db = fresh_loyalty_db(work / "small.db")
    imp_small = step(
        "loyalty import purchases (first 10 %)",
        timed(loyalty(small_db, "import", "purchases", str(small), "--quiet")),
        "peak flat in file size",
    )
    run = step("loyalty run", timed(loyalty(db, "run", "--as-of", AS_OF)), "<= 6 x sqlite3")
    # The same night as cron runs it (one process: import, then run), on a copy.
    before = work / "nightly.db"
    shutil.copy(db, before)
    inbox = work / "inbox"
    inbox.mkdir()
    shutil.copy(increment, inbox / "purchases-increment.csv")
    inc_import = timed(loyalty(db, "import", "purchases", str(increment), "--quiet"))
    inc_run = timed(loyalty(db, "run", "--as-of", NEXT_DAY))
    inc = step(
        "nightly increment (import 10,000 + run)",
        Timing(
            inc_import.seconds + inc_run.seconds,
            max(inc_import.peak_mib, inc_run.peak_mib),
            inc_run.code,
            inc_import.cpu + inc_run.cpu,
        ),
        "<= 5 % of the full run",
    )
    nightly = step(
        "the same night by `loyalty nightly` (one process)",
        timed(loyalty(before, "nightly", "--inbox", str(inbox), "--as-of", NEXT_DAY, "--quiet")),
        "<= 5 % of the full run",
    )
    kpi = step(
        "loyalty report kpi (one month)",
        timed(loyalty(db, "report", "kpi", "--from", "2026-10-23", "--to", AS_OF,
                      "--format", "json")),
        "< 1 s",
    )  # fmt: skip
    sim = step(
        "loyalty simulate (same program, whole history)",
        timed(loyalty(db, "simulate", str(ROOT / "programs" / "boutique.yaml"), "--format",
                      "json")),
        "<= 1.5 x the full run",
    )  # fmt: skip
    # The second night, on top of the first (after kpi and simulate, which read it).
    inbox2 = work / "inbox2"
    inbox2.mkdir()
    shutil.copy(increment2, inbox2 / "purchases-increment2.csv")
    night2 = step(
        "the second night by `loyalty nightly`",
        timed(loyalty(db, "nightly", "--inbox", str(inbox2), "--as-of", "2026-11-24", "--quiet")),
        "<= 5 % of the full run",
    )

    print("\n| step | seconds | x sqlite3 .import | CPU s | peak MiB | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, timing, target in rows:
        if timing is None:
            print(f"| {name} | - | - | - | - | {target} |")
            continue
        ratio = f"{timing.seconds / base.seconds:.1f}" if base else "-"
        print(
            f"| {name} | {timing.seconds:.2f} | {ratio} | {timing.cpu:.2f} "
            f"| {timing.peak_mib:.0f} | {target} |"
        )
    print()
    if base:
        # However well a step spread its work over the cores, it cannot take less
        # wall time than its CPU time divided by them.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        for label, timing in (("import", imp), ("run", run)):
            if timing:
                least = timing.cpu / cores
                print(
                    f"{label}: {timing.cpu:.1f} s of CPU on {cores} cores = at least "
                    f"{least:.1f} s, {least / base.seconds:.1f} x sqlite3 .import"
                )
    if base and imp and run:
        print(f"import: {imp.seconds / base.seconds:.1f} x sqlite3 .import (target <= 2.5)")
        print(f"run:    {run.seconds / base.seconds:.1f} x sqlite3 .import (target <= 6)")
    if imp and imp_small:
        print(
            f"import peak: {imp.peak_mib:.0f} MiB for the file, {imp_small.peak_mib:.0f} MiB "
            "for its first 10 % (target < 150 MiB, flat)"
        )
    if inc and run:
        print(f"increment: {100 * inc.seconds / run.seconds:.1f} % of the full run (target <= 5)")
    if nightly and run:
        share = 100 * nightly.seconds / run.seconds
        print(f"nightly:   {share:.1f} % of the full run (one process)")
    if night2 and run:
        share = 100 * night2.seconds / run.seconds
        print(f"night 2:   {share:.1f} % of the full run (one process)")
    if kpi:
        print(f"report kpi: {kpi.seconds:.2f} s (target < 1 s, includes interpreter start-up)")
    if sim and run:
        print(f"simulate: {sim.seconds / run.seconds:.2f} x the full run (target <= 1.5)")

    if args.profile:
        prof_db = fresh_loyalty_db(work / "prof.db")
        print("\n## cProfile: import of the first 10 %\n")
        print(profile(prof_db, work / "import.prof", "import", "purchases", str(small), "--quiet"))
        print("## cProfile: run of the first 10 %\n")
        print(profile(prof_db, work / "run.prof", "run", "--as-of", AS_OF))


if __name__ == "__main__":
    main()
