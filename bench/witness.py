#!/usr/bin/env python
"""Witness throughput: add-checkpoint requests per second with consistency proofs over a 10^6-entry log.

    .venv/bin/python bench/witness.py [--entries 1000000] [--logs 32] [--requests 250] [--json FILE]

No database and no Django: it starts the shipped witness (``python -m audit.witness serve``) on
127.0.0.1 with a fresh key and state file in a temporary directory, configured with ``--logs``
test logs. Each log is the same tree of ``--entries`` random leaf hashes, built in memory with
every perfect subtree stored (so proofs come from ``audit.merkle`` exactly as the ledger builds
them). One client thread per log, each on one keep-alive connection, submits ``--requests``
checkpoints that grow from about half the tree to the full tree, each with its consistency
proof (old size = the size the witness cosigned last; every answer must be 200). All request
bodies (signed notes and proofs) are built before the clock starts.

Baseline, same run, same server, same threads and connections: ``GET /healthz``. Target: at
least 500 add-checkpoint requests/s (issue #14); the ratio to the baseline says what share of
the plain HTTP capacity the protocol work (parse, Ed25519 verify, proof, fsynced state, sign)
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from audit.cosignature import Cosigner, add_checkpoint_body, verify_cosignatures  # noqa: E402
from audit.merkle import consistency_ranges, fold, resolve  # noqa: E402
from audit.note import CheckpointBody, public_bytes, sign_note, verifier_key  # noqa: E402
from audit.witness.server import write_key  # noqa: E402

TARGET_RATE = 500.0
perf = time.perf_counter


class Tree:
    """Every perfect subtree of a tree of random leaf hashes, level by level (32 bytes per node)."""

    def __init__(self, entries: int, seed: int) -> None:
        rng = random.Random(seed)
        self.size = entries
        self.levels: list[bytes] = [rng.randbytes(32 * entries)]
        sha256 = hashlib.sha256
        while len(self.levels[-1]) >= 64:
            below = self.levels[-1]
            pairs = len(below) // 64
            self.levels.append(b"".join(sha256(b"\x01" + below[i * 64 : i * 64 + 64]).digest() for i in range(pairs)))

    def fetch(self, needed: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {(level, index): self.levels[level][index * 32 : index * 32 + 32] for level, index in needed}

    def root(self, size: int) -> bytes:
        return fold(resolve([(0, size)], self.fetch))

    def proof(self, old: int, new: int) -> list[bytes]:
        return [] if old in (0, new) else resolve(consistency_ranges(old, new), self.fetch)


def build_requests(tree: Tree, origin: str, key: Ed25519PrivateKey, count: int, rng: random.Random) -> list[bytes]:
    start = tree.size // 2 + rng.randrange(1000)
    sizes = sorted(rng.sample(range(start + 1, tree.size + 1), count - 1))
    bodies, old = [], 0
    for size in [start, *sizes]:
        text = CheckpointBody(origin=origin, tree_size=size, root_hash=tree.root(size)).text()
        note = sign_note(text, [(origin, key)])
        bodies.append(add_checkpoint_body(old_size=old, proof=tree.proof(old, size), note=note))
        old = size
    return bodies


def start_witness(directory: Path, log_vkeys: list[str]) -> tuple[subprocess.Popen[str], int, str]:
    key = Ed25519PrivateKey.generate()
    write_key(directory / "witness.pem", key)
    cmd = [sys.executable, "-m", "audit.witness", "serve", "--listen", "127.0.0.1:0", "--name", "bench.witness/1",
           "--key", str(directory / "witness.pem"), "--state", str(directory / "state.json")]
    for vkey in log_vkeys:
        cmd += ["--log", vkey]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the witness did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1]), str(Cosigner.from_key("bench.witness/1", key.public_key()))


Request = tuple[str, str, bytes | None]


def run_clients(port: int, work: list[list[Request]]) -> tuple[float, list[float], list[list[bytes]]]:
    """One thread and one keep-alive connection per list of (method, path, body); every answer must be 200.

    Returns the wall time, every latency, and the answers of each list in order.
    """
    latencies: list[float] = []
    answers: list[list[bytes]] = [[] for _ in work]
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(work) + 1)

    def client(n: int, requests: list[Request]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bodies = answers[n]
        barrier.wait()
        for method, path, body in requests:
            t0 = perf()
            conn.request(method, path, body=body)
            response = conn.getresponse()
            data = response.read()
            mine.append(perf() - t0)
            if response.status != 200:
                errors.append(f"{method} {path}: {response.status} {data[:200]!r}")
                break
            bodies.append(data)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n, requests)) for n, requests in enumerate(work)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = perf()
    for t in threads:
        t.join()
    elapsed = perf() - t0
    if errors:
        raise SystemExit("a request failed: " + errors[0])
    return elapsed, latencies, answers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--logs", type=int, default=32, help="logs (one client thread each)")
    parser.add_argument("--requests", type=int, default=250, help="add-checkpoint requests per log")
    parser.add_argument("--single", type=int, default=300, help="requests of the one-log diagnostic (0: skip)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    load = os.getloadavg()
    t0 = perf()
    tree = Tree(args.entries, args.seed)
    print(f"tree of {args.entries:,} leaves with every perfect subtree stored: {perf() - t0:.1f} s", flush=True)
    logs = []
    for i in range(args.logs + 1):  # the last one is the one-log diagnostic
        origin = f"bench.log/{i}"
        key = Ed25519PrivateKey.generate()
        logs.append((origin, key, verifier_key(origin, public_bytes(key.public_key()))))
    t0 = perf()
    bodies = {origin: build_requests(tree, origin, key, args.requests, rng) for origin, key, _ in logs[:-1]}
    single_origin, single_key, _ = logs[-1]
    single = build_requests(tree, single_origin, single_key, args.single, rng) if args.single else []
    proof_lengths = [body.split(b"\n\n", 1)[0].count(b"\n") for reqs in bodies.values() for body in reqs[1:]]
    logs, single_log = logs[:-1], logs[-1]
    print(f"{args.logs * args.requests + args.single:,} signed add-checkpoint bodies built: {perf() - t0:.1f} s "
          f"(consistency proofs of {min(proof_lengths)}-{max(proof_lengths)} hashes, "
          f"mean {statistics.mean(proof_lengths):.1f})", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-witness-", dir=os.environ.get("BENCH_TMP")) as tmp:
        proc, port, cosigner_vkey = start_witness(Path(tmp), [vkey for _, _, vkey in [*logs, single_log]])
        try:
            health = [[("GET", "/healthz", None)] * args.requests for _ in logs]
            run_clients(port, [[("GET", "/healthz", None)] * 50 for _ in logs])  # warm-up: threads, connections
            base_elapsed, base_lat, _ = run_clients(port, health)
            work = [[("POST", "/add-checkpoint", body) for body in bodies[origin]] for origin, _, _ in logs]
            elapsed, lat, answers = run_clients(port, work)
            single_elapsed = run_clients(port, [[("POST", "/add-checkpoint", b) for b in single]])[0] if single else 0
            state_size = (Path(tmp) / "state.json").stat().st_size
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    # Every answer must be a cosignature of the checkpoint it answered: check every 25th and each last one.
    cosigner = Cosigner.parse(cosigner_vkey)
    checked = failed = 0
    for (origin, _, _), replies in zip(logs, answers, strict=True):
        for i, (body, reply) in enumerate(zip(bodies[origin], replies, strict=True)):
            if i % 25 == 0 or i == len(replies) - 1:
                note = body.split(b"\n\n", 1)[1].decode()
                checked += 1
                failed += not verify_cosignatures(note + reply.decode(), [cosigner])
    total = args.logs * args.requests
    rate, base_rate = total / elapsed, total / base_elapsed
    ratio = rate / base_rate
    passed = rate >= TARGET_RATE and failed == 0
    print()
    print(f"load average before: {load[0]:.2f} (other processes on the machine move these figures)")
    print(f"baseline GET /healthz:      {base_rate:8.0f} requests/s   p50 {pct(base_lat, .5) * 1000:.2f} ms"
          f"  p99 {pct(base_lat, .99) * 1000:.2f} ms")
    print(f"POST /add-checkpoint:       {rate:8.0f} requests/s   p50 {pct(lat, .5) * 1000:.2f} ms"
          f"  p99 {pct(lat, .99) * 1000:.2f} ms")
    print(f"ratio add-checkpoint / healthz: {ratio:.2f}")
    if single:
        print(f"diagnostic, one log alone:  {len(single) / single_elapsed:8.0f} requests/s   "
              "(one request in flight: each waits for its own fsynced state)")
    print(f"target >= {TARGET_RATE:.0f} add-checkpoint/s over a {args.entries:,}-entry log: "
          f"{'PASS' if passed else 'FAIL'} ({args.logs} logs x {args.requests} requests, all 200; "
          f"cosignatures verified: {checked - failed}/{checked} sampled; state file {state_size} bytes)")
    if args.json:
        result: dict[str, Any] = {
            "entries": args.entries, "logs": args.logs, "requests": total, "rate": rate, "baseline_rate": base_rate,
            "ratio": ratio, "p50_ms": pct(lat, .5) * 1000, "p99_ms": pct(lat, .99) * 1000,
            "proof_hashes_mean": statistics.mean(proof_lengths), "passed": passed, "cpus": os.cpu_count(),
            "single_log_rate": len(single) / single_elapsed if single else None, "load": os.getloadavg(),
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
