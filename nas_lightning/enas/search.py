"""An ENAS search: `python search.py experiment=enas`.

``run_enas(cfg)`` builds the space, the strategy (the standalone search's
REINFORCE/PPO over the same LSTM controller), the supernet and the data,
trains the supernet with :class:`EnasModule` (controller steps after each
epoch), then samples ``enas.final_candidates`` architectures from the trained
controller, scores each on the whole validation split with the shared
weights and writes the best as ``best.json``.

The run folder is a search's: ``config.yaml``; ``children.jsonl`` with one
record per controller step (reward from one validation minibatch, marked
``"weight_sharing": true``); ``best.json`` (during the search the best
controller step so far, at the end the best final candidate, loadable by
``train.py genotype=...``); ``candidates.json``; ``strategy.pt``;
``summary.json``; ``checkpoints/last.ckpt`` (supernet, optimizer, strategy
state), replaced atomically after every epoch's controller steps:
``resume=<run>`` continues after the last completed epoch. The checkpoint
holds tensors and plain values only and is loaded with ``weights_only=True``:
a checkpoint that holds anything else is refused, never run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Checkpoint

from nas_lightning.core.builders import build, build_partial
from nas_lightning.core.child_record import ChildRecord
from nas_lightning.core.records import (
    CHILDREN,
    RunRecorder,
    atomic_write,
    fault_point,
    fsync_dir,
)
from nas_lightning.core.signals import critical
from nas_lightning.enas.checks import check_enas_config
from nas_lightning.enas.module import EnasHooks, EnasModule
from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import genotype_to_dict
from nas_lightning.search.loggers import SearchLogger
from nas_lightning.search.runfolder import RunFolder, open_run_folder
from nas_lightning.search.setup import build_parts, finish_outputs, start_outputs
from nas_lightning.spaces.nasnet import NASNetSpace
from nas_lightning.strategies.base import Strategy
from nas_lightning.training.module import resume_sampler_epoch

log = logging.getLogger("nas_lightning.enas")

CHECKPOINT = "checkpoints/last.ckpt"


@dataclass
class EnasResult:
    """What a finished ENAS search returns (and what its run folder holds)."""

    run_dir: Path
    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    candidates: list[dict[str, Any]]
    strategy: Strategy
    space: NASNetSpace
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


class RunHooks(EnasHooks):
    """Writes the module's records to the run folder and its metrics to the logger."""

    def __init__(
        self, recorder: RunRecorder, logger: SearchLogger, records: list, rank: int
    ) -> None:
        self.recorder, self.logger, self.records, self.rank = recorder, logger, records, rank
        self.epoch_start = time.perf_counter()

    def supernet_step(self, metrics: dict[str, float]) -> None:
        if self.rank == 0:
            self.logger.log_metrics(metrics, "supernet/step")

    def controller_record(self, record: dict[str, Any]) -> None:
        self.recorder.append_child(record)  # on disk before the strategy learns from it
        self.records.append(record)

    def controller_told(self, record: dict[str, Any], stats: dict[str, float]) -> None:
        best = self.recorder.best["reward"] if self.recorder.best else None
        if self.rank == 0:
            self.logger.log_child(record, stats, best)

    def epoch_end(self, epoch: int, steps: int, records: list[dict[str, Any]]) -> None:
        rewards = [r["reward"] for r in records]
        mean = sum(rewards) / len(rewards) if rewards else float("nan")
        log.info(
            "epoch %d: %d supernet steps, controller mean reward %.4f over %d steps, %.1fs",
            epoch + 1,
            steps,
            mean,
            len(rewards),
            time.perf_counter() - self.epoch_start,
        )
        self.epoch_start = time.perf_counter()


class EpochCheckpoint(Checkpoint):
    """Writes ``checkpoints/last.ckpt`` at the end of every epoch, atomically.

    A :class:`Checkpoint` subclass, so Lightning calls it after the module's
    ``on_train_epoch_end``: the checkpoint includes the epoch's controller
    steps. The Trainer writes a temporary file, which replaces the old
    checkpoint in one rename: a kill at any moment leaves the previous
    epoch's checkpoint or this one, never a torn file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with critical():
            trainer.save_checkpoint(str(tmp))
            if trainer.is_global_zero:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                fault_point("checkpoint.before_replace")
                os.replace(tmp, self.path)
                fsync_dir(self.path.parent)
        fault_point("checkpoint.after")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``path``'s checkpoint, read with ``weights_only=True``: tensors and plain values only.

    Anything else (a pickled object, a file that is not a checkpoint) is a
    one-line :class:`ConfigError` naming the file; nothing in it runs.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unsafe content, truncated, garbage
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ConfigError(
            "resume", f"{path} cannot be loaded safely ({first}); delete it to restart the "
            "supernet's training"
        ) from None
    if not isinstance(state, dict) or "enas" not in state or "state_dict" not in state:
        raise ConfigError("resume", f"{path} is not an ENAS checkpoint")
    return state


def _restore_records(
    run_dir: Path, records: list[dict[str, Any]], checkpoint: Path | None
) -> list[dict[str, Any]]:
    """The records the checkpoint has seen; later ones (after it) are cut from disk.

    A killed search recorded controller steps after its last checkpoint; the
    resumed run trains that epoch again and records them anew.
    """
    steps = 0
    if checkpoint is not None:
        steps = int(load_checkpoint(checkpoint)["enas"]["controller_step"])
    if len(records) < steps:
        raise ConfigError(
            "resume", f"{run_dir / CHILDREN} has {len(records)} records, the checkpoint {steps}"
        )
    if len(records) > steps:
        records = records[:steps]
        text = "".join(json.dumps(r) + "\n" for r in records)
        atomic_write(run_dir / CHILDREN, text.encode())
    return records


def run_enas(cfg: DictConfig, *, strategy: Strategy | None = None) -> EnasResult:
    """Run (or resume) the ENAS search described by ``cfg``.

    The run folder is held as for any search (lock, signals: runfolder.py);
    SIGTERM or Ctrl-C leaves it resumable from the last epoch's checkpoint.
    Set up and closed as the standalone search is (``search/setup.py``);
    ``strategy``: a controller strategy built by the caller for the NASNet space.
    """
    with open_run_folder(cfg) as folder:
        return _run_enas(cfg, folder, strategy)


def _run_enas(cfg: DictConfig, folder: RunFolder, strategy: Strategy | None) -> EnasResult:
    # the datamodule has a validation loader; ENAS uses it outside Lightning's loop
    warnings.filterwarnings("ignore", message=".*no `validation_step`.*")
    e = cfg.get("enas")
    if e is None:
        raise ConfigError("enas", "is missing (use experiment=enas)")
    check_enas_config(cfg)  # every value, before anything is built or trained
    epochs, num_final, eval_batch_size = e.epochs, e.final_candidates, e.eval_batch_size

    # Build everything first: a bad value stops the run before any training.
    parts = build_parts(cfg, strategy)
    space, strategy, logger = parts.space, parts.strategy, parts.logger
    run_dir, rank, start = parts.run_dir, parts.rank, parts.start
    if not isinstance(space, NASNetSpace):
        raise ConfigError(
            "search_space", "ENAS runs on the NASNet cell space (search_space=nasnet)"
        )
    datamodule = build(cfg.dataset, "dataset")
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # the supernet's init
    supernet = build_supernet(cfg, space, datamodule)
    optimizer = build(e.optimizer, "enas.optimizer")
    trainer_factory = build(cfg.trainer, "trainer")

    checkpoint = run_dir / CHECKPOINT
    resume_from = checkpoint if cfg.resume and checkpoint.is_file() else None
    records = folder.records
    if cfg.resume and rank == 0:
        records = _restore_records(run_dir, records, resume_from)
    recorder = RunRecorder(run_dir, enabled=rank == 0, run_id=folder.run_id, recorded=records)
    hooks = RunHooks(recorder, logger, records, rank)
    try:
        module = EnasModule(
            supernet,
            strategy,
            optimizer=optimizer,
            lr_min=float(e.lr_min),
            controller_steps=e.controller_steps,
            controller_batch_size=e.controller_batch_size,
            entropy_reward_weight=float(e.entropy_reward_weight),
            channels_last=bool(e.channels_last),
            hooks=hooks,
            log_every_n_steps=e.log_every_n_steps,
            seed=int(cfg.seed),
        )
    except ConfigError as err:
        raise err.prefixed("enas") from None
    start_outputs(parts, folder)
    if resume_from is not None:
        log.info("resuming %s from %s after epoch %d (%d controller steps)", run_dir,
                 resume_from, records[-1]["extra"]["epoch"] + 1 if records else 0, len(records))

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule.seed = int(cfg.seed)
    if resume_from is not None:  # the resumed epoch's own data order, not epoch 0's
        resume_sampler_epoch(datamodule, str(resume_from))
    trainer = trainer_factory(
        max_epochs=epochs,
        callbacks=[EpochCheckpoint(checkpoint)],
        logger=False,
        enable_checkpointing=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        limit_train_batches=e.get("limit_train_batches") or 1.0,
        gradient_clip_val=e.get("grad_clip"),
        default_root_dir=str(run_dir),
    )
    candidates: list[dict[str, Any]] = []
    completed = False
    try:
        trainer.fit(
            module,
            datamodule=datamodule,
            ckpt_path=str(resume_from) if resume_from else None,
            weights_only=True,
        )
        candidates = final_candidates(module, strategy, datamodule, num_final, eval_batch_size)
        best = max(candidates, key=lambda c: c["reward"])
        recorder.best = best
        recorder.write_json("best.json", best)
        recorder.write_json("candidates.json", candidates)
        recorder.save_strategy(strategy.state_dict())
        log.info(
            "best candidate %d: val_acc=%.4f (shared weights, %d images)",
            best["index"],
            best["val_acc"],
            len(datamodule.data["val"]),
        )
        log.info("best genotype: %s", json.dumps(best["genotype"]))
        completed = True
    finally:
        summary = {
            "status": folder.status(completed),
            "controller_steps": len(records),
            "supernet_steps": int(trainer.global_step),
            "epochs": int(trainer.current_epoch),
            "final_candidates": len(candidates),
            "wall_seconds": round(time.perf_counter() - start, 2),
            "best_val_acc": recorder.best.get("val_acc") if candidates else None,
            "weight_sharing": True,
        }
        finish_outputs(parts, recorder, records, recorder.best if candidates else None, summary)
    return EnasResult(
        run_dir,
        records,
        recorder.best,
        candidates,
        strategy,
        space,
        time.perf_counter() - start,
        summary,
    )


def final_candidates(
    module: EnasModule, strategy: Strategy, datamodule: Any, n: int, batch_size: int
) -> list[dict[str, Any]]:
    """Sample ``n`` architectures and score each on the whole validation split."""
    module.eval()
    out = []
    for i, proposal in enumerate(strategy.ask(n)):
        start = time.perf_counter()
        acc = module.score(proposal.genotype, datamodule, batch_size)
        out.append(
            ChildRecord(
                index=i,
                status="ok",
                phase="final",
                reward=acc,
                val_acc=acc,
                genotype=genotype_to_dict(proposal.genotype),
                actions=tuple(proposal.actions),
                weight_sharing=True,
                seconds=round(time.perf_counter() - start, 4),
                extra={"val_images": len(datamodule.data["val"])},
            ).to_dict()
        )
        log.info("candidate %d/%d: val_acc=%.4f", i + 1, n, acc)
    return out


def build_supernet(cfg: DictConfig, space: NASNetSpace, datamodule: Any) -> Any:
    """The (untrained) supernet that ``cfg.enas.supernet`` describes for ``space``."""
    return build_partial(
        cfg.enas.supernet,
        "enas.supernet",
        num_blocks=space.num_blocks,
        ops=space.ops,
        combines=space.combines,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
    )


def load_supernet(run_dir: str | Path) -> tuple[Any, Any]:
    """A finished (or checkpointed) ENAS run's trained supernet and its data, for analysis.

    Returns ``(supernet, datamodule)``: the supernet in eval mode, channels-last
    when the run trained so, with the weights of ``checkpoints/last.ckpt``; the
    datamodule set up as in the run (same validation split).
    """
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    space = build(cfg.search_space, "search_space")
    datamodule = build(cfg.dataset, "dataset")
    datamodule.setup("fit")
    supernet = build_supernet(cfg, space, datamodule)
    state = load_checkpoint(run_dir / CHECKPOINT)
    prefix = "supernet."
    supernet.load_state_dict(
        {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    )
    if cfg.enas.get("channels_last", True):
        supernet = supernet.to(memory_format=torch.channels_last)
    return supernet.eval(), datamodule


def standalone_search_config(cfg: DictConfig, run_dir: str, **child: Any) -> DictConfig:
    """The standalone search's config for an ENAS run's space: children trained from scratch.

    The ENAS preset points the dataset's batch and training subset at the
    supernet's; a standalone child trains on ``child.train_subset`` images in
    batches of ``child.batch_size``, as ``python search.py`` does. ``child``
    overrides recipe keys (None values are ignored).
    """
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out.runner = None
    out.run_dir = run_dir
    out.dataset.batch_size = out.child.batch_size
    out.dataset.train_subset = out.child.get("train_subset")
    for key, value in child.items():
        if value is not None:
            out.child[key] = value
    return out
