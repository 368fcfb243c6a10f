#!/usr/bin/env python3
"""Where each process's CPU goes, from the folded stacks of perf/flamegraph.sh.

Usage: perf/profile_breakdown.py FOLDED

Every sample is counted once, in the first class that matches:
  1. kernel: the sampled frame is in the kernel (system calls, the network
     stack, scheduling and wake-ups, I/O);
  2. allocation: the sampled frame is the allocator (malloc/free family or
     mimalloc);
  3. otherwise the innermost frame of the stack that belongs to one of the
     named libraries (policy, tracing, the PostgreSQL client, JSON and
     hashing, the gRPC/HTTP transport, the async runtime) or to PECR's own
     crates; a sample with none of these is "other".

PostgreSQL's own code has no symbols in Debian's build, so a backend's
samples split into kernel, allocation and "other" only.
"""

import re
import sys
from collections import Counter, defaultdict

KERNEL = re.compile(r"_\[k\]$")
ALLOCATOR = re.compile(
    r"^(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|malloc_consolidate"
    r"|unlink_chunk|__rdl_|__rust_alloc|__rust_dealloc|__rust_realloc|mi_|_mi_)"
)
LIBRARIES = [
    ("policy (regorus)", re.compile(r"regorus")),
    ("logs and spans (tracing)", re.compile(r"tracing_subscriber|tracing_core|tracing::span")),
    ("PostgreSQL client", re.compile(r"tokio_postgres|postgres_protocol|postgres_types|deadpool")),
    ("JSON and hashing", re.compile(r"serde_json|pecr_contracts::canonical|sha2::|hash_canonical")),
    ("gRPC/HTTP transport (tonic, h2, hyper, tower, prost)",
     re.compile(r"tonic::|h2::|hyper::|hyper_util|tower::|prost::|http_body")),
    ("async runtime (tokio)", re.compile(r"tokio::runtime|tokio::sync|tokio::time")),
    ("PECR code", re.compile(r"^<?pecr_")),
]
SERVICES = ("pecr-controller", "pecr-gateway", "pecr-ledger-writer")


def classify(frames):
    leaf = frames[-1]
    if KERNEL.search(leaf):
        return "kernel (system calls, network, scheduling, I/O)"
    if ALLOCATOR.search(leaf):
        return "memory allocation"
    for frame in reversed(frames):
        for name, pattern in LIBRARIES:
            if pattern.search(frame):
                return name
    return "other"


def main(path):
    totals = Counter()
    classes = defaultdict(Counter)
    with open(path, encoding="utf-8") as folded:
        for line in folded:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            process = frames[0].split(" ")[0]
            process = next((name for name in SERVICES if process.startswith(name)), process)
            totals[process] += int(count)
            classes[process][classify(frames)] += int(count)
    grand = sum(totals.values())
    for process, total in totals.most_common():
        if total < grand * 0.02:
            continue
        print(f"{process}: {100 * total / grand:.1f} % of the samples")
        for name, count in classes[process].most_common():
            print(f"  {100 * count / total:5.1f} %  {name}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
