"""Rank 0 quotes why another DDP rank failed, read from that rank's stderr file."""

from __future__ import annotations

from nas_lightning.execution import rank_errors

GLOO_ABORT = """\
/venv/lib/python3.11/site-packages/pytorch_lightning/trainer/connectors/data_connector.py:425: \
UserWarning: The 'val_dataloader' does not have many workers
terminate called after throwing an instance of 'gloo::EnforceNotMet'
  what():  [enforce fail at pair.cc:464] op.preamble.length <= op.nbytes. 11328 vs 544. \
Received data size doesn't match expected size. Is there a distributed collective mismatch?
"""


def test_a_native_abort_on_another_rank_is_quoted(tmp_path):
    path = rank_errors.stderr_path(tmp_path, 1)
    path.parent.mkdir(parents=True)
    path.write_text("an earlier child's output\n")
    since = rank_errors.stderr_sizes(tmp_path, world=2)
    with path.open("a") as f:
        f.write(GLOO_ABORT)
    (reason,) = rank_errors.peer_errors(tmp_path, since, wait=0).values()
    assert reason.startswith("[enforce fail at pair.cc:464] op.preamble.length <= op.nbytes.")


def test_a_marked_line_wins_and_older_lines_are_not_read(tmp_path):
    path = rank_errors.stderr_path(tmp_path, 1)
    path.parent.mkdir(parents=True)
    path.write_text(f"{rank_errors.MARK} child 0: RuntimeError: old\n")
    since = rank_errors.stderr_sizes(tmp_path, world=3)
    assert rank_errors.peer_errors(tmp_path, since, wait=0) == {}
    with path.open("a") as f:
        f.write(f"RuntimeError: noise\n{rank_errors.MARK} child 1: ValueError: new\nmore\n")
    assert rank_errors.peer_errors(tmp_path, since, wait=0) == {1: "child 1: ValueError: new"}
