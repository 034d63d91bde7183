"""Is the toy build bit-identical whatever torch's thread count? Builds it twice and compares.

Each build runs in its own process with another ``OMP_NUM_THREADS`` (1, then 2 by default) into
its own cache, then every ``*.safetensors`` file of the two builds is compared by SHA-256. Exits
1 when any file differs. Takes two toy builds (a few minutes on a busy 2-core machine).

    python benchmarks/toy_determinism.py [--threads 1 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILD = (
    "from pathlib import Path; import sys; from finetune_safety.catalog.toy import ensure_toy; "
    "print(ensure_toy(Path(sys.argv[1])))"
)


def build(cache: Path, threads: int) -> tuple[Path, float]:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(cache)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.safetensors"))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--keep", type=Path, help="build into DIR/<threads> and keep the builds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep or Path(scratch)
        results = [build(where / f"threads-{n}", n) for n in args.threads]
    (first, first_s), (second, second_s) = results
    a, b = digests(first), digests(second)
    for name in sorted(a.keys() | b.keys()):
        same = a.get(name) == b.get(name)
        print(f"{'same' if same else 'DIFFERENT'}  {name}  {a.get(name, '-')[:16]}")
    print(f"build time OMP_NUM_THREADS={args.threads[0]}: {first_s:.0f}s, "
          f"={args.threads[1]}: {second_s:.0f}s (ratio {second_s / first_s:.2f})")  # fmt: skip
    identical = a == b and bool(a)
    print("identical" if identical else "the builds differ")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
