"""Held-out exact match and eval loss of a base model or a run's result on a registered dataset's eval split.

    python bench/heldout_exact_match.py --data-dir D --model starter-vlm            # the base
    python bench/heldout_exact_match.py --data-dir D --model run:3 --dataset shapes-qa  # a finished run

Short answers (every eval row whose id does not end in "-caption") are generated greedily and compared after
normalising case, surrounding spaces, final punctuation and a leading article; the eval loss is the mean token
loss over every eval row's answers (captions included), as training computes it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets.records import Message, read_samples  # noqa: E402
from core.datasets.split import EVAL_FILE  # noqa: E402
from core.studio import Studio  # noqa: E402


def normalise(text: str) -> str:
    text = text.strip().lower().rstrip(".!?,;:").strip()
    return re.sub(r"^(a|an|the)\s+", "", re.sub(r"\s+", " ", text))


def eval_loss(studio: Studio, choice: str, samples: list, folder: Path, batch_size: int = 8) -> float:
    import torch

    from jobs.batches import Collator

    loaded = studio.chat._load(choice)  # the chat tab's loading: base, adapter on its base, or full weights
    collate = Collator(loaded.encoder)
    total, tokens = 0.0, 0
    encoded = [loaded.encoder.encode(s, folder) for s in samples]
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = {k: v.to(loaded.device) for k, v in collate(encoded[start:start + batch_size]).items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(loaded.model(**batch).loss) * n
            tokens += n
    return total / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", required=True, help="a base model choice, or run:N for a run's result")
    parser.add_argument("--dataset", default="shapes-qa")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--show", type=int, default=8, help="print this many answers")
    args = parser.parse_args()

    studio = Studio(args.data_dir)
    folder = studio.catalog.resolve_dir(args.dataset)
    samples = list(read_samples(folder / EVAL_FILE))
    started = time.time()
    loss = eval_loss(studio, args.model, samples, folder)
    right, seen = defaultdict(int), defaultdict(int)
    shown = 0
    for sample in samples:
        kind = sample.id.rsplit("-", 1)[-1]
        if kind == "caption":
            continue
        question, reference = sample.messages[0], sample.messages[1].content
        replies = list(studio.chat_stream(args.model, [Message("user", question.content)],
                                          [folder / p for p in sample.images], max_new_tokens=args.max_new_tokens))
        answer = replies[-1] if replies else ""
        seen[kind] += 1
        right[kind] += normalise(answer) == normalise(reference)
        if shown < args.show:
            print(f"  {sample.id}: {question.content.splitlines()[-1]!r} -> {answer!r} (reference {reference!r})")
            shown += 1
    result = {"model": args.model, "eval_loss": round(loss, 4), "eval_perplexity": round(math.exp(loss), 3),
              "exact_match": round(sum(right.values()) / max(1, sum(seen.values())), 4),
              "per_kind": {k: f"{right[k]}/{seen[k]}" for k in sorted(seen)},
              "rows": sum(seen.values()), "seconds": round(time.time() - started, 1)}
    print(json.dumps(result, indent=2))
    studio.close()


if __name__ == "__main__":
    main()
