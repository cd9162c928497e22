"""The evaluation metrics on fixed strings against hand-computed values; best-result selection and early stopping;
the before/after table, the per-sample sort and the CSV export."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from core.evals.metrics import (
    accuracy,
    corpus_bleu,
    exact_match,
    normalise,
    perplexity,
    rouge_l,
    sentence_bleu,
    summarise,
)
from core.evals.results import before_after, sample_rows, write_csv
from core.evals.tracking import EvalTracker


def test_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalise("  The Cat, sat!  on A mat. ") == "cat sat on mat"
    assert exact_match("A red square.", "red Square") == 1.0
    assert exact_match("a red square", "a blue square") == 0.0
    assert exact_match("Theory", "ory") == 0.0  # "the" goes only as a whole word


def test_accuracy_credits_the_reference_inside_the_answer_as_whole_words() -> None:
    assert accuracy("It is red.", "red") == 1.0
    assert accuracy("The shape is a red square", "Red square!") == 1.0
    assert accuracy("reddish", "red") == 0.0
    assert accuracy("square red", "red square") == 0.0  # order matters


def test_rouge_l_is_the_longest_common_subsequence_f1() -> None:
    # answer "the cat is on the mat" vs reference "the cat sat on the mat": LCS "the cat on the mat" = 5 of 6 words
    assert rouge_l("the cat is on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # 2 of 3 answer words, 2 of 4 reference words: F1 = 2PR/(P+R) = 2*(2/3)*(1/2)/(2/3+1/2) = 4/7
    assert rouge_l("red big square", "a red blue square") == pytest.approx(4 / 7)
    # each Chinese character is a word: "红色方块" is 4 of the answer's 5 characters
    assert rouge_l("红色的方块", "红色方块") == pytest.approx(2 * (4 / 5) * 1 / (4 / 5 + 1))


def test_bleu_matches_the_hand_computed_geometric_mean() -> None:
    # n-gram precisions of "the cat is on the mat" against "the cat sat on the mat": 5/6, 3/5, 1/4, and 0/3,
    # which sacrebleu's exponential smoothing turns into 1/(2*3); same length, so no brevity penalty.
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(1 / 4) + math.log(1 / 6)) / 4)
    assert sentence_bleu("the cat is on the mat", "the cat sat on the mat") == pytest.approx(expected)
    assert sentence_bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100)
    # Corpus BLEU pools the counts of both sentences: 1-grams 5/5, 2-grams 3/3, 3-grams 2/2, 4-grams 1/1, so every
    # precision is 1; the answers have 5 tokens against the references' 6, so the brevity penalty is e^(1-6/5).
    pooled = corpus_bleu(["a b c d", "x"], ["a b c d", "x y"])
    assert pooled == pytest.approx(100 * math.exp(1 - 6 / 5))


def test_summary_weighs_loss_by_reference_tokens() -> None:
    scored = [
        {"answer": "red", "reference": "red", "exact_match": 1.0, "accuracy": 1.0, "rouge_l": 1.0, "nll": 2.0,
         "tokens": 2},
        {"answer": "blue", "reference": "green", "exact_match": 0.0, "accuracy": 0.0, "rouge_l": 0.0, "nll": 12.0,
         "tokens": 6},
        {"answer": "x", "reference": "y", "exact_match": 0.0, "accuracy": 0.0, "rouge_l": 0.0, "nll": None,
         "tokens": 0},  # too long to score its loss: left out of loss, kept in the rest
    ]
    summary = summarise(scored)
    assert summary["samples"] == 3 and summary["exact_match"] == pytest.approx(1 / 3)
    assert summary["loss"] == pytest.approx(14 / 8) and summary["perplexity"] == pytest.approx(math.exp(14 / 8))
    assert perplexity(float("nan")) is None and perplexity(1000.0) is None


def test_best_is_the_lowest_loss_and_patience_counts_evaluations_without_improvement() -> None:
    tracker = EvalTracker(patience=2)
    verdicts = [tracker.record(step, loss) for step, loss in [(0, 5.0), (10, 4.0), (20, 4.5), (30, 3.5),
                                                              (40, 3.6), (50, 3.5)]]
    assert [v.improved for v in verdicts] == [True, True, False, True, False, False]
    assert [v.exhausted for v in verdicts] == [False, False, False, False, False, True]  # stops at step 50
    assert (tracker.best_step, tracker.best_loss) == (30, 3.5)  # a tie is no improvement
    never = EvalTracker(patience=0)
    assert not any(never.record(s, 10.0 + s).exhausted for s in range(20))
    replayed = EvalTracker.replay(2, [{"step": 0, "eval_loss": 5.0}, {"step": 1, "loss": 9.0},
                                      {"step": 10, "eval_loss": 6.0}])
    assert (replayed.best_step, replayed.since_best) == (0, 1)


def result(index: int, base: float, tuned: float) -> dict:
    return {"index": index, "id": f"s{index}", "question": "q", "reference": "r", "images": [],
            "base": {"answer": "b", "rouge_l": base, "loss": 2.0}, "tuned": {"answer": "t", "rouge_l": tuned,
                                                                             "loss": 1.0 + index}}


def test_per_sample_rows_sort_by_improvement_and_by_score() -> None:
    results = [result(0, 0.5, 0.6), result(1, 0.9, 0.1), result(2, 0.0, 1.0)]
    assert [r["#"] for r in sample_rows(results, "rouge_l", "improvement, best first")] == [3, 1, 2]
    assert [r["#"] for r in sample_rows(results, "rouge_l", "improvement, worst first")] == [2, 1, 3]
    assert [r["#"] for r in sample_rows(results, "rouge_l", "score, best first")] == [3, 1, 2]
    # loss: lower is better, so the best score is the lowest and the improvement is base minus fine-tuned
    assert [r["#"] for r in sample_rows(results, "loss", "score, best first")] == [1, 2, 3]
    assert [r["improvement"] for r in sample_rows(results, "loss", "dataset order")] == [1.0, 0.0, -1.0]


def test_before_after_table_says_which_way_is_better() -> None:
    summary = {"base": {"samples": 4, "exact_match": 0.25, "accuracy": 0.5, "bleu": 10.0, "rouge_l": 0.4,
                        "loss": 3.0, "perplexity": math.exp(3.0)},
               "tuned": {"samples": 4, "exact_match": 0.75, "accuracy": 0.75, "bleu": 30.0, "rouge_l": 0.8,
                         "loss": 1.0, "perplexity": math.exp(1.0)}}
    rows = {r["metric"]: r for r in before_after(summary)}
    assert (rows["Exact match (%)"]["base"], rows["Exact match (%)"]["fine-tuned"]) == (25.0, 75.0)
    assert rows["Exact match (%)"]["better by"] == 50.0
    assert rows["Loss on references"]["better by"] == 2.0  # lower loss is better: a positive change
    assert rows["Samples scored"]["base"] == 4


def test_csv_export_reloads_and_never_starts_a_formula(tmp_path: Path) -> None:
    rows = sample_rows([{**result(0, 0.5, 0.75), "question": "=HYPERLINK(\"x\")"}], "rouge_l", "dataset order")
    path = write_csv(rows, tmp_path / "out.csv", "rouge_l")
    with path.open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][-1] == "improvement (rouge_l)"
    assert table[1][2] == "'=HYPERLINK(\"x\")" and table[1][6:] == ["50.0", "75.0", "25.0"]
