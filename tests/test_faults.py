"""Fault injection: searches killed at named and random points resume to the same run.

Slow but for one trial with reused proposals (each search is a process; W&B
trials use the real library, no server); the same trials print a table with
`python tests/fault_harness.py` (README, "What a run folder guarantees").
"""

from __future__ import annotations

import random
import signal

import pytest
from fault_harness import (
    NAMED,
    RANDOM_KILLS,
    REUSE_FAST,
    REUSE_RANDOM_KILLS,
    REUSE_TRIALS,
    REUSED,
    WANDB,
    Zygote,
    concurrent_resumes,
    concurrent_starts,
    named_trial,
    random_trial,
    reference_run,
    reuse_trial,
    wandb_trial,
)

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A zygote and the uninterrupted search every trial is compared with."""
    work = tmp_path_factory.mktemp("faults")
    z = Zygote()
    try:
        yield z, work, reference_run(z, work)
    finally:
        z.close()


def check(trial) -> None:
    assert trial.kills >= 1, trial
    assert trial.lost == 0 and trial.duplicated == 0, trial
    assert not trial.bad_status, trial
    assert trial.identical, trial


@slow
@pytest.mark.parametrize("points", NAMED, ids=["+".join(p) for p in NAMED])
def test_killed_inside_a_write(lab, points):
    z, work, reference = lab
    trial = named_trial(z, work, points, reference)
    assert trial.kills == len(points), trial
    check(trial)


@slow
@pytest.mark.parametrize("number", range(RANDOM_KILLS))
def test_killed_at_a_random_moment(lab, number):
    z, work, reference = lab
    check(random_trial(z, work, random.Random(number), number, reference))


@slow
@pytest.mark.parametrize("number", range(2))
def test_sigterm_at_a_random_moment(lab, number):
    z, work, reference = lab
    check(random_trial(z, work, random.Random(100 + number), number, reference,
                       signal.SIGTERM, stops=1))


@slow
@pytest.mark.parametrize("name", list(WANDB))
def test_wandb_failing(lab, name):
    """W&B failing at start or mid-run: the search finishes, exit 0, the same children."""
    z, work, reference = lab
    trial = wandb_trial(z, work, name, reference)
    assert trial.steps == [0], trial
    check(trial)


@slow
def test_two_resumes_of_one_folder(lab):
    z, work, reference = lab
    trial = concurrent_resumes(z, work, reference)
    assert not trial.bad_status and trial.identical and not trial.duplicated, trial


@slow
def test_two_searches_started_together(lab):
    _, work, reference = lab
    trial = concurrent_starts(work, reference)
    assert not trial.bad_status and trial.identical, trial
    assert trial.lost == 0 and trial.duplicated == 0, trial


@pytest.fixture(scope="module")
def reuse_lab(tmp_path_factory):
    """A zygote and the uninterrupted search with reused proposals."""
    work = tmp_path_factory.mktemp("reuse-faults")
    z = Zygote()
    try:
        yield z, work, reference_run(z, work, REUSED)
    finally:
        z.close()


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in REUSE_FAST[:1] else slow)
                                  for n in REUSE_TRIALS])
def test_killed_and_damaged_with_reuses(reuse_lab, name):
    z, work, reference = reuse_lab
    check(reuse_trial(z, work, name, reference))


@slow
@pytest.mark.parametrize("number", range(REUSE_RANDOM_KILLS))
def test_killed_at_a_random_moment_with_reuses(reuse_lab, number):
    z, work, reference = reuse_lab
    check(random_trial(z, work, random.Random(200 + number), number, reference,
                       setup=REUSED))
