"""Memory benchmark: generate a large JSONL dataset, import (validate + write) it in a child process, report peak RSS.

Run from the repository root:
    python bench/dataset_validate_memory.py                 # 200 MB of JSONL
    python bench/dataset_validate_memory.py --size-mb 1024  # 1 GB (needs about 2.2 GB free disk, a few minutes)
    python bench/dataset_validate_memory.py --mode validate # check only, write nothing
    python bench/dataset_validate_memory.py --json-list     # the same rows as one JSON list (streamed as well)
The issue's target is a 1 GB JSONL validated with peak RSS under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from core.datasets.importer import import_dataset, validate_dataset
start = time.time()
if {mode!r} == "import":
    report = import_dataset(Path({source!r}), Path({dest!r}), eval_ratio=0.01)
else:
    report = validate_dataset(Path({source!r}))
print(json.dumps({{"seconds": time.time() - start, "rows_total": report.rows_total, "rows_kept": report.rows_kept,
                  "rows_eval": report.rows_eval, "images": report.images, "problems": report.problem_counts}}))
"""


def generate(path: Path, size_mb: float, seed: int = 0, json_list: bool = False) -> int:
    """Write chat rows (some with images, a few bad ones) until the file reaches ``size_mb``; returns the rows."""
    from PIL import Image

    images = path.parent / "images"
    images.mkdir(exist_ok=True)
    for i in range(8):
        Image.new("RGB", (32, 32), (i * 30, 100, 200 - i * 20)).save(images / f"{i}.png")
    rng = random.Random(seed)
    words = "the a red blue square circle image shows model answer question small large bright dark".split()
    target = int(size_mb * 1024 * 1024)
    rows = written = 0
    with path.open("w", encoding="utf-8") as f:
        if json_list:
            f.write("[\n")
        while written < target:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(20, 120)))
            row: dict = {"messages": [{"role": "user", "content": "Describe: " + text[:200]},
                                      {"role": "assistant", "content": text}]}
            if rows % 10 == 0:
                row["images"] = [f"images/{rows % 8}.png"]
                row["messages"][0]["content"] = "<image>" + row["messages"][0]["content"]
            if rows % 1000 == 999:
                row["messages"][1]["content"] = ""  # an empty answer: excluded and counted
            line = ("," if json_list and rows else "") + json.dumps(row) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            rows += 1
        if json_list:
            f.write("]\n")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200.0, help="size of the generated JSONL (default 200)")
    parser.add_argument("--mode", choices=("import", "validate"), default="import")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the files (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json-list", action="store_true", help="write one JSON list instead of JSONL (streamed too)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dataset-bench-", dir=args.workdir))
    try:
        source = work / ("data.json" if args.json_list else "data.jsonl")
        t0 = time.time()
        rows = generate(source, args.size_mb, json_list=args.json_list)
        gen_s = time.time() - t0
        code = CHILD.format(root=str(ROOT), mode=args.mode, source=str(source), dest=str(work / "dataset"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        result = json.loads(done.stdout.strip().splitlines()[-1])
        size = source.stat().st_size
        print(f"generated {size / 2**20:,.0f} MB, {rows:,} rows in {gen_s:.0f} s")
        print(f"{args.mode}: {result['seconds']:.1f} s ({size / 2**20 / result['seconds']:.1f} MB/s), "
              f"rows kept {result['rows_kept']:,} of {result['rows_total']:,} (eval {result['rows_eval']:,}), "
              f"images {result['images']}, problems {result['problems']}")
        print(f"peak RSS of the {args.mode} process: {max(peak_kb, before) / 1024:.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"files kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
