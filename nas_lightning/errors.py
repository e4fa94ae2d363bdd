"""Errors that the entry points turn into a one-line message."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """An error's message in one line: its first line, or the error's type if empty.

    A first line that ends with a colon announces the cause on the next
    line (``Error loading 'x':`` then ``RuntimeError('...')``): the cause is
    kept, so the line is never cut before what it announces.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


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
