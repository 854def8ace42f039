#!/usr/bin/env python3
"""Whether two mtrobust results stores hold the same rows: every table, every column but those
that differ between two runs of the same cells (wall time, timestamps, the device's name).

    python3 scripts/ci/same-rows.py merged.sqlite unsharded.sqlite

Exits 0 when equal, 1 naming the first difference, 2 on a usage or file error. Numbers are
compared exactly: both stores come from the same binary on the same device and thread count.
"""
import sqlite3
import sys

# Columns that say when, how long and where, not what.
SKIP = {("clean", "seconds"), ("clean", "created"), ("cells", "seconds"), ("cells", "created"), ("cells", "device")}


def tables(conn):
    return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))


def rows(conn, table):
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if (table, r[1]) not in SKIP]
    got = conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
    # Sorted as text so that NULLs and numbers order alike in both stores.
    return cols, sorted(got, key=lambda r: [repr(v) for v in r])


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = argv[1], argv[2]
    try:
        ca, cb = (sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in (a, b))
        ta, tb = tables(ca), tables(cb)
    except sqlite3.Error as e:
        print(f"same-rows: cannot read {a} or {b}: {e}", file=sys.stderr)
        return 2
    if ta != tb:
        print(f"same-rows: different tables: {a} has {ta}, {b} has {tb}", file=sys.stderr)
        return 1
    counts = []
    for t in ta:
        cols, ra = rows(ca, t)
        _, rb = rows(cb, t)
        if len(ra) != len(rb):
            print(f"same-rows: table {t}: {len(ra)} rows in {a}, {len(rb)} in {b}", file=sys.stderr)
            return 1
        if ra != rb:
            sa, sb = set(ra), set(rb)
            only_a, only_b = [r for r in ra if r not in sb], [r for r in rb if r not in sa]
            print(f"same-rows: table {t}: {len(only_a)} row(s) only in {a}, {len(only_b)} only in {b}", file=sys.stderr)
            for where, r in [(a, only_a[:1]), (b, only_b[:1])]:
                for x in r:
                    shown = ", ".join(f"{c}={v!r:.70}" for c, v in zip(cols, x))
                    print(f"  only in {where}: {shown}", file=sys.stderr)
            return 1
        counts.append(f"{t} {len(ra)}")
    print(f"same rows in {a} and {b}: " + ", ".join(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
