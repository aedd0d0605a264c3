"""The CPython rows of `shelf bench`: CPython's shelve over one dbm format.

Runs the same workloads as src/bench.rs, in the same order, with the same
N, value size and seed (the value bytes differ: Python's random is not our
splitmix64, but sizes and key names match), values pickled with protocol 3
as shelf's pickle protocol writes them, and prints one JSON object in the
shape of report.rs's BackendResult.

Formats: dumb (dbm.dumb, every CPython), gnu (dbm.gnu, a CPython built with
_gdbm), sqlite3 (dbm.sqlite3, CPython 3.13 and later).

A write workload (insert, overwrite, delete) stops after --budget seconds
and reports the rate over the keys done so far, with a note: dbm.dumb
rewrites its whole index on every delete (quadratic), and dbm.sqlite3
commits, and so syncs, every single assignment.

Usage: bench_shelve.py --format F --n N --value-size B --seed S --budget SEC --dir DIR
"""

import argparse
import importlib
import json
import os
import random
import shelve
import sys
import time

PROTOCOL = 3  # what shelf's pickle protocol writes, so the values compare
# A read workload runs up to READ_RUNS times while its runs took under
# REPEAT_WITHIN seconds, and the fastest counts (as in bench.rs).
READ_RUNS = 3
REPEAT_WITHIN = 0.3

FORMATS = ("dumb", "gnu", "sqlite3")

# Why a write workload of a format is slow, where the format itself is.
WHY_SLOW = {
    ("dumb", "delete"): "dbm.dumb rewrites its whole index on every delete",
    ("sqlite3", "insert"): "dbm.sqlite3 commits (and syncs) every assignment",
    ("sqlite3", "overwrite"): "dbm.sqlite3 commits (and syncs) every assignment",
    ("sqlite3", "delete"): "dbm.sqlite3 commits (and syncs) every deletion",
}


def size_of(d):
    total = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            if f != os.path.basename(__file__):
                total += os.path.getsize(os.path.join(root, f))
    return total


def timing(name, ops, seconds):
    seconds = max(seconds, 1e-9)
    return {"workload": name, "ops": ops, "seconds": seconds, "ops_per_sec": ops / seconds}


def best_of(run):
    """(smallest count found, fastest seconds) over the runs of a read workload."""
    found, best = run()
    spent = best
    for _ in range(1, READ_RUNS):
        if spent >= REPEAT_WITHIN:
            break
        f, d = run()
        spent += d
        best = min(best, d)
        found = min(found, f)
    return found, best


def timed(f):
    t = time.perf_counter()
    r = f()
    return r, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", choices=FORMATS, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--value-size", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--budget", type=float, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    fmt = a.format
    mod = importlib.import_module("dbm." + fmt)
    n, size, budget = a.n, a.value_size, a.budget
    rng = random.Random(a.seed)
    path = os.path.join(a.dir, "db")
    keys = ["key%08d" % i for i in range(n)]
    values = [rng.randbytes(size) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    timings, notes = [], []

    def stopped(workload, done, of):
        why = WHY_SLOW.get((fmt, workload))
        notes.append(
            "%s stopped after %.0f s at %d of %d keys%s"
            % (workload, budget, done, of, (": " + why) if why else "")
        )

    def open_shelf(flag):
        # shelve.open would pick whichever dbm it finds first; each row
        # names its format.
        return shelve.Shelf(mod.open(path, flag), protocol=PROTOCOL)

    s = open_shelf("n")
    present = 0
    t = time.perf_counter()
    for k, v in zip(keys, values):
        s[k] = v
        present += 1
        if time.perf_counter() - t > budget:
            break
    s.sync()
    timings.append(timing("insert", present, time.perf_counter() - t))
    if present < n:
        stopped("insert", present, n)
    live = [i for i in order if i < present]

    found, d = best_of(lambda: timed(lambda: sum(1 for i in live if len(s[keys[i]]) == size)))
    timings.append(timing("get", len(live), d))
    assert found == len(live)

    fresh = [rng.randbytes(size) for _ in range(n)]
    done = 0
    t = time.perf_counter()
    for i in live:
        s[keys[i]] = fresh[i]
        done += 1
        if time.perf_counter() - t > budget:
            break
    s.sync()
    timings.append(timing("overwrite", done, time.perf_counter() - t))
    if done < len(live):
        stopped("overwrite", done, len(live))

    seen, d = best_of(lambda: timed(lambda: sum(1 for _k, v in s.items() if len(v) == size)))
    timings.append(timing("iterate", seen, d))
    assert seen == present

    s.close()
    t = time.perf_counter()
    s = open_shelf("w")
    count = len(s)
    timings.append(timing("reopen", count, time.perf_counter() - t))
    assert count == present

    half = live[: len(live) // 2]
    done = 0
    t = time.perf_counter()
    for i in half:
        del s[keys[i]]
        done += 1
        if time.perf_counter() - t > budget:
            break
    s.sync()
    timings.append(timing("delete", done, time.perf_counter() - t))
    if done < len(half):
        stopped("delete", done, len(half))
    after_sync = size_of(a.dir)
    after_compact = None
    db = s.dict
    if hasattr(db, "reorganize"):  # gnu always; dumb and sqlite3 from 3.13
        db.reorganize()
        s.sync()
        after_compact = size_of(a.dir)
    s.close()

    json.dump(
        {
            "backend": "python-" + fmt,
            "kind": "python",
            "engine": "python-" + fmt,
            "protocol": "pickle",
            "timings": timings,
            "bytes_after_sync": after_sync,
            "bytes_after_compact": after_compact,
            "notes": notes + ["CPython %s (%s), dbm.%s" % (sys.version.split()[0], sys.executable, fmt)],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
