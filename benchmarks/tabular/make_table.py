"""Build the project's own tabular benchmarks: every architecture of a small space, trained once.

Two tables (``--space``):

* ``nasnet_b1`` (the default): described below.
* ``nas_rl_l3``: the NAS-RL macro space with 3 layers, filter heights
  1/3/5/7, width 3, 16 filters and the last layer's skip connection from
  layer 0 (or not): 4 ** 3 x 2 = 128 architectures, every action tuple a
  distinct network. Children average-pool the image to 14x14 first
  (``downsample=2``, as ``experiment=nas_rl``). Same recipe as below.

``nasnet_b1``: a NASNet space with one block per cell, three ops and ``add``
only: 2 x (2 inputs x 2 inputs x 3 ops x 3 ops) gives 36 ** 2 = 1,296 action
tuples. Swapping a block's two (input, op) pairs gives the same network, so
there are 21 ** 2 = 441 distinct architectures; each is trained once with a
fixed short recipe through the search's own evaluator
(:class:`~nas_lightning.execution.evaluator.LightningEvaluator`, the same
Lightning child module and Trainer settings a search uses) on the embedded
Fashion-MNIST subset, then scored on the held-out test images. Every action
tuple gets the row of its architecture.

Output (``benchmarks/tabular/nasnet_b1.jsonl``): a header line describing the
space, recipe and machine, then one line per action tuple:
``actions, arch, val_acc, test_acc, params, seconds``. Progress is appended
to ``.partial*.jsonl`` files, so an interrupted build continues where it
stopped; ``--shard K/N`` splits the work over N processes, and a last run
without ``--shard`` (nothing left to train) writes the table.

Usage (from the repository root; ~20-25 CPU minutes on one thread)::

    nice -n 10 python benchmarks/tabular/make_table.py
    nice -n 10 python benchmarks/tabular/make_table.py --space nas_rl_l3
    # or in two processes, then assemble:
    nice -n 10 python benchmarks/tabular/make_table.py --shard 0/2 &
    nice -n 10 python benchmarks/tabular/make_table.py --shard 1/2; wait
    python benchmarks/tabular/make_table.py
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from nas_lightning.data import EmbeddedFashionMNIST
from nas_lightning.execution.base import Trial
from nas_lightning.execution.evaluator import LightningEvaluator
from nas_lightning.genotypes import genotype_to_dict
from nas_lightning.models.nas_rl import NASRLNetwork
from nas_lightning.models.nasnet import NASNetwork
from nas_lightning.spaces import NASNetSpace, NASRLSpace, SearchSpace
from nas_lightning.strategies import Proposal
from nas_lightning.utils import quiet_lightning

OPS = ("identity", "max_pool_3x3", "sep_conv_3x3")
MODEL = {
    "filters": 8,
    "cells_per_stage": 1,
    "num_reductions": 1,  # normal, reduction, normal: both cell types, 3 cells
    "stem_multiplier": 2,
    "stem_stride": 2,  # 28x28 -> 14x14 before the cells
}
RECIPE = {
    "epochs": 1,
    "batch_size": 64,
    "train_subset": 3000,  # 46 SGD steps
    "val_size": 1000,  # held out of the 9,000 training images; the search's reward
    "optimizer": "SGD lr 0.05, momentum 0.9, nesterov, weight decay 3e-4",
    "scheduler": "cosine",
    "warmup_steps": 0,
    "label_smoothing": 0.0,
    "channels_last": True,
    "gradient_clip_val": 5.0,
    "seed": 0,
    "augment": False,
    "test": "the 2,000 embedded test images, never seen by the search",
}


def space() -> NASNetSpace:
    return NASNetSpace(num_blocks=1, ops=OPS, combines=("add",))


NAS_RL = {
    "num_layers": 3,
    "filter_heights": [1, 3, 5, 7],
    "filter_widths": [3],
    "num_filters": [16],
}
NAS_RL_MODEL = {"downsample": 2}

# name -> (space, network factory and its arguments, canonical form, description)
SPACES: dict[str, tuple[Any, Any, dict[str, Any], Any, str]] = {
    "nasnet_b1": (
        space,
        NASNetwork,
        MODEL,
        None,  # set below: canonical
        "NASNet space, 1 block per cell, ops identity/max_pool_3x3/sep_conv_3x3, add; "
        "embedded Fashion-MNIST",
    ),
    "nas_rl_l3": (
        lambda: NASRLSpace(**NAS_RL),
        NASRLNetwork,
        NAS_RL_MODEL,
        tuple,
        "NAS-RL space, 3 layers, filter heights 1/3/5/7, width 3, 16 filters, skip "
        "connections; embedded Fashion-MNIST",
    ),
}


def canonical(actions: tuple[int, ...]) -> tuple[int, ...]:
    """The same network with each block's (input, op) pairs in sorted order."""
    out: list[int] = []
    for start in range(0, len(actions), 5):
        ia, ib, oa, ob, combine = actions[start : start + 5]
        (ia, oa), (ib, ob) = sorted([(ia, oa), (ib, ob)])
        out += [ia, ib, oa, ob, combine]
    return tuple(out)


SPACES["nasnet_b1"] = (*SPACES["nasnet_b1"][:3], canonical, SPACES["nasnet_b1"][4])


def all_actions(s: SearchSpace) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(n) for n in s.sizes)))


def datamodule() -> EmbeddedFashionMNIST:
    """The embedded Fashion-MNIST subset with the tables' recipe, loaded."""
    dm = EmbeddedFashionMNIST(
        batch_size=RECIPE["batch_size"],
        val_size=RECIPE["val_size"],
        train_subset=RECIPE["train_subset"],
        augment=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def make_evaluator(
    run_dir: Path, network: Any = NASNetwork, model: dict[str, Any] = MODEL
) -> tuple[LightningEvaluator, EmbeddedFashionMNIST, list]:
    """The search's evaluator with the fixed recipe; also returns a list that
    receives each child's network (so it can be tested after training)."""
    dm = datamodule()
    nets: list = []

    def capture(net, genotype, in_channels, num_classes) -> dict[str, Any]:
        nets.append(net)
        return {}

    child = OmegaConf.create({k: v for k, v in RECIPE.items() if k != "optimizer"})
    evaluator = LightningEvaluator(
        dm,
        functools.partial(network, **model),
        functools.partial(pl.Trainer, accelerator="cpu", devices=1, precision="32-true"),
        child,
        run_dir,
        seed=RECIPE["seed"],
        probe=capture,
        optimizer=functools.partial(
            torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True, weight_decay=3e-4
        ),
    )
    return evaluator, dm, nets


@torch.no_grad()
def test_accuracy(net: torch.nn.Module, dm: EmbeddedFashionMNIST) -> float:
    """Accuracy on the test split, in batches of 500 (eval mode, no augmentation)."""
    net.eval()
    test = dm.data["test"]
    correct = 0
    for start in range(0, len(test), 500):
        x, y = test[torch.arange(start, min(start + 500, len(test)))]
        x = dm.normalize(x).contiguous(memory_format=torch.channels_last)
        correct += int((net(x).argmax(1) == y).sum())
    return correct / len(test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=sorted(SPACES), default="nasnet_b1")
    parser.add_argument("--out", type=Path, default=None, help="default: <space>.jsonl here")
    parser.add_argument("--limit", type=int, default=None, help="train only this many (timing)")
    parser.add_argument(
        "--shard",
        default=None,
        help="K/N: train only architectures K, K+N, ... (run N processes, then once without)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # CPU time is the budget; one thread wastes none on contention
    quiet_lightning()
    make_space, network, model, canonical_form, description = SPACES[args.space]
    if args.out is None:
        args.out = Path(__file__).parent / f"{args.space}.jsonl"
    s = make_space()
    grid = all_actions(s)
    archs = sorted({canonical_form(a) for a in grid})
    k, n = map(int, args.shard.split("/")) if args.shard else (0, 1)
    partial = args.out.with_name(f"{args.out.stem}.partial{k if args.shard else ''}.jsonl")
    done: dict[tuple[int, ...], dict[str, Any]] = {}
    for path in sorted(args.out.parent.glob(f"{args.out.stem}.partial*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            done.setdefault(tuple(row["actions"]), row)
    wanted = set(archs)  # partial files of an earlier, larger space may hold other rows
    done = {a: row for a, row in done.items() if a in wanted}
    todo = [a for i, a in enumerate(archs) if i % n == k and a not in done][: args.limit]
    print(
        f"{len(grid)} action tuples, {len(archs)} architectures, {len(todo)} to train",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp:
        evaluator, dm, nets = make_evaluator(Path(tmp), network, model)
        with open(partial, "a") as f:
            for k, actions in enumerate(todo):
                cpu = time.process_time()
                proposal = Proposal(id=0, actions=actions, genotype=s.decode(actions))
                # index 0 for every child: the same seed, so the same data order
                # and initialisation stream; only the architecture differs.
                outcome = evaluator.run(Trial(0, proposal, seed=RECIPE["seed"]))
                if outcome.status != "ok":
                    raise RuntimeError(f"{actions}: {outcome.status} {outcome.error}")
                row = {
                    "actions": list(actions),
                    "val_acc": round(outcome.val_acc, 6),
                    "test_acc": round(test_accuracy(nets.pop(), dm), 6),
                    "params": outcome.params,
                    "seconds": round(outcome.seconds, 3),
                    "cpu_seconds": round(time.process_time() - cpu, 3),
                    "genotype": genotype_to_dict(proposal.genotype),
                }
                f.write(json.dumps(row) + "\n")
                f.flush()
                done[actions] = row
                print(
                    f"{k + 1}/{len(todo)} {row['val_acc']:.4f} {row['test_acc']:.4f} "
                    f"{row['cpu_seconds']:.1f}s cpu",
                    file=sys.stderr,
                    flush=True,
                )
    if args.shard or len(done) < len(archs):
        return
    header = {
        "description": description,
        "decisions": [[d.name, list(d.choices)] for d in s.decisions],
        "space": (
            {"num_blocks": 1, "ops": list(OPS), "combines": ["add"]}
            if args.space == "nasnet_b1"
            else NAS_RL
        ),
        "model": model,
        "recipe": RECIPE,
        "architectures": len(archs),
        "action_tuples": len(grid),
        "cpu_seconds_total": round(sum(r["cpu_seconds"] for r in done.values()), 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread, shared CPU",
        "command": "python benchmarks/tabular/make_table.py --space " + args.space,
        "columns": "actions: the action tuple; arch: index of its architecture (actions with "
        "each block's pairs sorted) in this file's architecture order; seconds: wall time of "
        "training + validation; cpu_seconds: process CPU time incl. the test pass",
    }
    index = {a: i for i, a in enumerate(archs)}
    with open(args.out, "w") as f:
        f.write(json.dumps(header) + "\n")
        for actions in grid:
            row = done[canonical_form(actions)]
            f.write(
                json.dumps(
                    {
                        "actions": list(actions),
                        "arch": index[canonical_form(actions)],
                        **{
                            k: row[k]
                            for k in ("val_acc", "test_acc", "params", "seconds", "cpu_seconds")
                        },
                    }
                )
                + "\n"
            )
    for path in args.out.parent.glob(f"{args.out.stem}.partial*.jsonl"):
        path.unlink()
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
