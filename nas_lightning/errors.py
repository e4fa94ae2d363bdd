"""Errors that the entry points turn into a one-line message."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid.

    Args:
        key: the config key at fault, relative to the object that raised it
            (``hidden``); the builder that instantiated the object prefixes
            its group (``controller.hidden``).
        message: what is wrong, in one line.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def prefixed(self, prefix: str) -> ConfigError:
        """Return the same error with ``prefix.`` in front of its key."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message)


class GenotypeError(ValueError):
    """A genotype (a file, a dict or a named one) is malformed or unknown."""


class RanksStopped(RuntimeError):
    """A DDP rank left in the middle of a child: the ranks can train no more children together."""
