"""The search loop, its evaluator, run folder and loggers."""
