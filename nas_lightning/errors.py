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

    @classmethod
    def no_full_batch(cls, images: int, batch_size: int, world_size: int) -> ConfigError:
        """Training on ``images`` would make no full batch of ``batch_size`` on each of
        ``world_size`` ranks (training drops a short batch: zero steps)."""
        ranks = f" on each of {world_size} ranks" if world_size > 1 else ""
        return cls(
            "dataset.batch_size",
            f"{images} training images make no full batch of {batch_size}{ranks}: lower the "
            "batch size (recipe.batch_size, child.batch_size) or train on more images",
        )

    def prefixed(self, prefix: str) -> ConfigError:
        """Return the same error with ``prefix.`` in front of its key."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message)


class GenotypeError(ValueError):
    """A genotype (a file, a dict or a named one) is malformed or unknown."""


class TransientError(RuntimeError):
    """Something the search needs did not answer in time (a Ray cluster not up yet).

    Nothing is wrong with the command: the same command may work later, so
    the entry points exit with a status a scheduler requeues (75, as
    ``EX_TEMPFAIL`` of sysexits.h).
    """


class RanksStopped(RuntimeError):
    """A DDP rank left in the middle of a child: the ranks can train no more children together."""
