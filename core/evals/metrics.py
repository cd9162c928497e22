"""Answer metrics: exact match and accuracy on normalised short answers, BLEU (sacrebleu), ROUGE-L (rouge-score),
and loss and perplexity on the references."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

ARTICLES = {"a", "an", "the"}
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+", re.UNICODE)
# The metrics of one model over a set of answers, in the order tables show them.
METRICS = ("exact_match", "accuracy", "bleu", "rouge_l", "loss", "perplexity")
METRIC_LABELS = {"exact_match": "Exact match (%)", "accuracy": "Accuracy (%)", "bleu": "BLEU",
                 "rouge_l": "ROUGE-L (F1, %)", "loss": "Loss on references", "perplexity": "Perplexity"}
LOWER_IS_BETTER = ("loss", "perplexity")
PER_SAMPLE = ("exact_match", "accuracy", "bleu", "rouge_l", "loss")  # what one answer gets


def normalise(text: str) -> str:
    """Lower case, punctuation removed, the articles a/an/the dropped, spaces collapsed (SQuAD's rule)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    return " ".join(w for w in text.split() if w not in ARTICLES)


def exact_match(answer: str, reference: str) -> float:
    """1.0 when the normalised answer equals the normalised reference, else 0.0."""
    return float(normalise(answer) == normalise(reference))


def accuracy(answer: str, reference: str) -> float:
    """1.0 when the normalised reference appears in the normalised answer as whole words ("It is red." is right
    for "red"; "reddish" is not), else 0.0. Meant for short answers; on long ones it is nearly exact match."""
    ref, ans = normalise(reference).split(), normalise(answer).split()
    if not ref:
        return float(not ans)
    return float(any(ans[i:i + len(ref)] == ref for i in range(len(ans) - len(ref) + 1)))


def words(text: str) -> list[str]:
    """Lower-case words for ROUGE; each CJK character is a word of its own (rouge-score's own tokenizer would
    drop every non-Latin letter)."""
    return WORD.findall(unicodedata.normalize("NFKC", text).lower())


class _Words:
    """rouge-score's tokenizer interface around ``words``."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


@functools.cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Words())


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 (0 to 1): the longest common word subsequence against both lengths."""
    return float(_rouge().score(reference, answer)["rougeL"].fmeasure)


def _bleu_tokenizer(references: Sequence[str]) -> str:
    return "zh" if any(CJK.search(r) for r in references) else "13a"


def sentence_bleu(answer: str, reference: str) -> float:
    """sacrebleu's sentence BLEU (0 to 100; exponential smoothing, 13a tokens, or Chinese tokens for CJK text)."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(answer, [reference], tokenize=_bleu_tokenizer([reference])).score)


def corpus_bleu(answers: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU over all answers (0 to 100): n-gram counts pooled, not sentence scores averaged."""
    import sacrebleu

    if not answers:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(answers), [list(references)],
                                       tokenize=_bleu_tokenizer(references)).score)


def perplexity(loss: float | None) -> float | None:
    """exp(mean negative log-likelihood per token); None when there is no loss or it would overflow."""
    if loss is None or not math.isfinite(loss) or loss > 700:
        return None
    return math.exp(loss)


def score_answer(answer: str, reference: str) -> dict[str, float]:
    """One answer's scores against its reference."""
    return {"exact_match": exact_match(answer, reference), "accuracy": accuracy(answer, reference),
            "bleu": sentence_bleu(answer, reference), "rouge_l": rouge_l(answer, reference)}


def summarise(scored: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of a set of scored answers (each with answer, reference, scores, and ``nll``/``tokens`` when
    its loss was measured). Loss is per reference token over the whole set, so long answers weigh more."""
    if not scored:
        return {"samples": 0, **{m: None for m in METRICS}}
    n = len(scored)
    nll = sum(s["nll"] for s in scored if s.get("tokens"))
    tokens = sum(s["tokens"] for s in scored if s.get("tokens"))
    loss = nll / tokens if tokens else None
    return {
        "samples": n,
        "exact_match": sum(s["exact_match"] for s in scored) / n,
        "accuracy": sum(s["accuracy"] for s in scored) / n,
        "bleu": corpus_bleu([s["answer"] for s in scored], [s["reference"] for s in scored]),
        "rouge_l": sum(s["rouge_l"] for s in scored) / n,
        "loss": loss,
        "perplexity": perplexity(loss),
    }
