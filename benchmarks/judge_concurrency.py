"""Concurrent vs sequential rubric judging against a loopback server with 50 ms per reply.

330 judgments (HEx-PHI's size: 11 categories x 30) through the real ``openai`` client, at
concurrency 16 and at concurrency 1, each after a short warm-up (the one-time ``openai`` import
and connection set-up are not judging throughput); prints the ratio (target >= 10x). Timing is
printed, not asserted: this machine's timings are noisy.

    python benchmarks/judge_concurrency.py [--n 330] [--latency 0.05] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from multiprocessing.connection import Connection

from finetune_safety.judges import JudgeSettings, make_judge
from finetune_safety.models.endpoint import Transport
from finetune_safety.testing.fake_openai import FakeOpenAI, Reply, Request, refusal_scorer
from finetune_safety.values import CATEGORIES, Label, Prompt


def _serve(latency: float, conn: Connection) -> None:
    """The judge server in its own process, as a real one would be (no shared GIL)."""

    def slow(request: Request) -> Reply:
        return Reply(refusal_scorer(request).text, delay=latency)

    with FakeOpenAI(slow) as server:
        conn.send(server.url)
        conn.recv()  # until the benchmark is done
        conn.send(server.count())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=330)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    items = [
        (Prompt(f"{CATEGORIES[i % 11]}-{i}", CATEGORIES[i % 11], f"request {i}"),
         "I'm sorry, I cannot help." if i % 3 else "Sure, here it is.")
        for i in range(args.n)
    ]  # fmt: skip
    timings = {}
    here, there = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(args.latency, there), daemon=True)
    process.start()
    url = here.recv()
    try:
        for concurrency in (args.concurrency, 1):
            transport = Transport(concurrency=concurrency)
            judge = make_judge(f"openai:judge@{url}", JudgeSettings(transport=transport))
            judge.judge(items[:concurrency])  # warm-up: the openai import, client, connections
            started = time.perf_counter()
            verdicts = judge.judge(items)
            timings[concurrency] = time.perf_counter() - started
            unsafe = sum(v.label == Label.UNSAFE for v in verdicts)
            errors = sum(v.label == Label.ERROR for v in verdicts)
            print(
                f"concurrency {concurrency:>2}: {timings[concurrency]:6.2f} s "
                f"({args.n / timings[concurrency]:6.1f} judgments/s; {unsafe} unsafe, "
                f"{errors} errors)"
            )
        here.send("done")
        requests = here.recv()
    finally:
        process.join(timeout=10)
        process.kill()
    warm = args.concurrency + 1
    print(f"requests sent: {requests} (expected {2 * args.n} + {warm} warm-up)")
    ratio = timings[1] / timings[args.concurrency]
    print(f"speed-up: {ratio:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
