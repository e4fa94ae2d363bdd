"""The search driver: its loop, run folder, progress, loggers and resume."""
