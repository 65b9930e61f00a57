"""The public Python API: :func:`~xbench.api.evaluate.evaluate` (explainers and metrics on your own
model and data) and :class:`~xbench.api.results.Results` (scores and leaderboard as DataFrames, a
run directory the CLI reports, checks and reproduces). Both are exported from ``xbench``."""
