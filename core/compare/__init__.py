"""Comparing runs side by side: the summary table, overlaid curves, the config diff, exports and A/B chat."""
