"""The reference row of `shelf bench`: CPython's shelve over dbm.dumb.

Runs the same workloads as src/bench.rs, in the same order, with the same
N, value size and seed (the value bytes differ: Python's random is not our
splitmix64, but sizes and key names match), and prints one JSON object in
the shape of bench.rs's BackendResult.

Usage: bench_shelve.py --n N --value-size B --seed S --dir DIR
"""

import argparse
import dbm.dumb
import json
import os
import random
import shelve
import sys
import time

PROTOCOL = 3  # what shelf's pickle protocol writes, so the values compare
DELETE_BUDGET = 5.0  # seconds; see the note on delete below


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--value-size", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    n, size = a.n, a.value_size
    rng = random.Random(a.seed)
    path = os.path.join(a.dir, "db")
    keys = ["key%08d" % i for i in range(n)]
    values = [rng.randbytes(size) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    timings, notes = [], []

    # shelve.open would pick dbm.gnu or dbm.ndbm where present; the
    # reference is dbm.dumb, the format shelf's dumb backend shares.
    s = shelve.Shelf(dbm.dumb.open(path, "n"), protocol=PROTOCOL)
    t = time.perf_counter()
    for k, v in zip(keys, values):
        s[k] = v
    s.sync()
    timings.append(timing("insert", n, time.perf_counter() - t))

    t = time.perf_counter()
    found = sum(1 for i in order if len(s[keys[i]]) == size)
    timings.append(timing("get", n, time.perf_counter() - t))
    assert found == n

    fresh = [rng.randbytes(size) for _ in range(n)]
    t = time.perf_counter()
    for i in order:
        s[keys[i]] = fresh[i]
    s.sync()
    timings.append(timing("overwrite", n, time.perf_counter() - t))

    t = time.perf_counter()
    seen = sum(1 for _k, v in s.items() if len(v) == size)
    timings.append(timing("iterate", n, time.perf_counter() - t))
    assert seen == n

    s.close()
    t = time.perf_counter()
    s = shelve.Shelf(dbm.dumb.open(path, "w"), protocol=PROTOCOL)
    count = len(s)
    timings.append(timing("reopen", n, time.perf_counter() - t))
    assert count == n

    # dbm.dumb rewrites its whole .dir index on every delete
    # (Lib/dbm/dumb.py, _Database.__delitem__ calls _commit), so deleting
    # N/2 keys is quadratic; stop after DELETE_BUDGET seconds and report the
    # rate over the keys deleted so far.
    half = n // 2
    done = 0
    t = time.perf_counter()
    for i in order[:half]:
        del s[keys[i]]
        done += 1
        if time.perf_counter() - t > DELETE_BUDGET:
            break
    s.sync()
    timings.append(timing("delete", done, time.perf_counter() - t))
    if done < half:
        notes.append(
            "delete stopped after %.0f s at %d of %d keys: dbm.dumb rewrites its index on every delete"
            % (DELETE_BUDGET, done, half)
        )
    after_sync = size_of(a.dir)
    after_compact = None
    db = s.dict
    if hasattr(db, "reorganize"):  # dbm.dumb gained reorganize() in 3.13
        db.reorganize()
        after_compact = size_of(a.dir)
    s.close()

    json.dump(
        {
            "backend": "python-dumb",
            "protocol": "pickle",
            "timings": timings,
            "bytes_after_sync": after_sync,
            "bytes_after_compact": after_compact,
            "notes": notes + ["CPython %s" % sys.version.split()[0]],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
