"""Regression evals: evaluators, paired statistics, runs recorded as EvalRun manifests."""
