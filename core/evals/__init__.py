"""Evaluation: eval loss in a run, answer metrics, evaluation jobs scoring a base and a run's result, their records."""
