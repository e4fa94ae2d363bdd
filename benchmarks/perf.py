"""What a search costs, and how close the framework runs to a plain PyTorch loop.

Measurements, picked with ``--sections`` (default: throughput controller
search; see BENCHMARKS.md, "Performance"):

1. ``throughput``: child training images/s of the project's path
   (``LightningEvaluator``: ``ChildModule`` + ``Trainer``, exactly as the
   search trains a child) against a plain PyTorch loop on the same built
   network (same seed, so the same initial weights), the same in-memory data
   tensors and batch order, batch size, optimizer, schedule and gradient
   clipping. Sides alternate (plain first on even repetitions, Lightning
   first on odd ones), so machine noise hits both alike; medians of the
   repetitions are reported, per wall second and per CPU second of this
   process. Steady state: the first ``--warmup`` steps are excluded on both
   sides. Extra rows: the first child trained in NCHW (what channels-last
   buys) and validation images/s at ``child.batch_size`` against
   ``child.eval_batch_size``.
2. ``threads`` (opt-in): the plain loop at 1 and 2 torch threads.
3. ``controller``: sampling (``ask``) and the policy update (``tell``) of
   REINFORCE and PPO on the NASNet space, per child, with no training.
4. ``search``: the default search, run as ``python search.py`` runs it (a
   subprocess through Hydra's main, ``perf_search.py``) with timers around
   the loop's steps; the children's records carry their own split
   (``extra.timing``). Gives the wall time, the share of it inside training
   steps and validation, and every child's fixed cost.

Usage (from the repository root)::

    nice -n 10 python benchmarks/perf.py                  # default sections
    python benchmarks/perf.py --quick                     # smoke run (minutes)
    python benchmarks/perf.py --sections throughput threads --reps 5
    python benchmarks/perf.py --overrides trainer=gpu_bf16 --search-args trainer=gpu_bf16

Writes ``--out`` (JSON, default ``benchmarks/results/perf.json``) and a
markdown table next to it (``perf.md``). Every figure carries the load
average seen while it was measured: on a shared machine, compare only
figures taken side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, Path(__file__).resolve().parent):  # run as a script from anywhere
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import perf_search  # noqa: E402  (the search section, next to this file)

DEFAULT_CHILDREN = ["nasnet_a", "random:0", "random:1", "random:2"]


def load() -> float:
    """The 1-minute load average (how busy the machine was)."""
    return round(os.getloadavg()[0], 2)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("search", overrides=overrides)


# -- 1. throughput -----------------------------------------------------------


def _children(cfg, names: list[str]) -> list[tuple[str, Any]]:
    import random

    from nas_lightning.core.builders import build
    from nas_lightning.genotypes import load_genotype

    space = build(cfg.search_space, "search_space")
    out = []
    for name in names:
        if name.startswith("random:"):
            actions = space.sample(random.Random(int(name.split(":")[1])))
            out.append((name, space.decode(actions)))
        else:
            out.append((name, load_genotype(name)))
    return out


def _device(name: str | None, cfg):
    """The plain loop's device: as asked, else where the trainer config trains."""
    import torch

    if name:
        return torch.device(name)
    wants_gpu = str(cfg.trainer.get("accelerator", "cpu")) in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock_callback(warmup: int):
    """A callback marking the end of step ``warmup`` and the end of training."""
    import pytorch_lightning as pl

    class StepClock(pl.Callback):
        def on_fit_start(self, trainer, pl_module) -> None:
            self.done, self.t_warm, self.t_end = 0, None, None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.done += 1
            if self.done == warmup:
                _sync(pl_module.device)
                self.t_warm, self.c_warm = time.perf_counter(), time.process_time()

        def on_validation_start(self, trainer, pl_module) -> None:
            if self.t_end is None:
                _sync(pl_module.device)
                self.t_end, self.c_end = time.perf_counter(), time.process_time()

        on_train_epoch_end = on_validation_start

    return StepClock()


def run_lightning(cfg, dm, genotype, steps: int, warmup: int, seed: int,
                  model=None) -> dict[str, float]:
    """Train ``steps`` steps through the search's own evaluator."""
    from omegaconf import OmegaConf

    from nas_lightning.core.builders import build
    from nas_lightning.execution.base import Trial
    from nas_lightning.execution.evaluator import LightningEvaluator
    from nas_lightning.strategies.base import Proposal

    child = OmegaConf.merge(cfg.child, {"limit_train_batches": steps, "limit_val_batches": 1})
    clock = _clock_callback(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = LightningEvaluator(
            dm, model or build(cfg.model, "model"), build(cfg.trainer, "trainer"), child,
            Path(tmp), seed=seed,
            optimizer=build(cfg.child.optimizer, "child.optimizer"), callbacks=[clock],
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        outcome = evaluator.run(Trial(0, Proposal(0, (), genotype), seed=seed))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if outcome.status != "ok":
        raise RuntimeError(f"child failed: {outcome.error}")
    images = (steps - warmup) * dm.batch_size
    return {"img_s": images / (clock.t_end - clock.t_warm),
            "cpu_img_s": images / (clock.c_end - clock.c_warm), "wall_s": wall, "cpu_s": cpu,
            "params": outcome.params, **{f"t_{k}": v for k, v in outcome.timing.items()}}


def run_plain(cfg, dm, genotype, steps: int, warmup: int, seed: int, device,
              precision: str, channels_last: bool | None = None, model=None) -> dict[str, float]:
    """The same child trained by the shortest correct PyTorch loop."""
    import pytorch_lightning as pl
    import torch
    from torch.nn import functional as F

    from nas_lightning.core.builders import build
    from nas_lightning.data.base import BatchIndexSampler

    cl = bool(cfg.child.get("channels_last", True)) if channels_last is None else channels_last
    fmt = torch.channels_last if cl else torch.contiguous_format
    pl.seed_everything(seed, workers=True, verbose=False)
    dm.seed = seed
    t0, cpu0 = time.perf_counter(), time.process_time()
    net = (model or build(cfg.model, "model"))(genotype, in_channels=dm.in_channels,
                                               num_classes=dm.num_classes)
    net = net.to(device=device, memory_format=fmt).train()
    opt = build(cfg.child.optimizer, "child.optimizer")(net.parameters())
    total = steps

    def cosine(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    clip = cfg.child.get("gradient_clip_val")
    data = dm.data["train"]
    sampler = BatchIndexSampler(len(data), dm.batch_size, shuffle=True, drop_last=True, seed=seed)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    t_warm = None
    for i, index in enumerate(sampler):
        if i == steps:
            break
        x, y = data[index]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = dm.normalize(x)
        if dm.augment or dm.cutout:
            x = dm.augment_batch(x)
        x = x.contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(x)
            loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
        scaler.step(opt)
        scaler.update()
        sched.step()
        if i + 1 == warmup:
            _sync(device)
            t_warm, c_warm = time.perf_counter(), time.process_time()
    _sync(device)
    t_end, c_end = time.perf_counter(), time.process_time()
    images = (steps - warmup) * dm.batch_size
    return {"img_s": images / (t_end - t_warm), "cpu_img_s": images / (c_end - c_warm),
            "wall_s": t_end - t0, "cpu_s": c_end - cpu0}


def run_eval(cfg, dm, genotype, batch_size: int, seed: int, device) -> dict[str, float]:
    """Validation images/s of the child at ``batch_size`` (inference, as Lightning runs it)."""
    import pytorch_lightning as pl
    import torch

    from nas_lightning.core.builders import build

    fmt = torch.channels_last if cfg.child.get("channels_last", True) else torch.contiguous_format
    pl.seed_everything(seed, workers=True, verbose=False)
    net = build(cfg.model, "model")(genotype, in_channels=dm.in_channels,
                                    num_classes=dm.num_classes)
    net = net.to(device=device, memory_format=fmt).eval()
    data = dm.data["val"]
    n = len(data)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            x, _ = data[torch.arange(start, min(n, start + batch_size))]
            net(dm.normalize(x.to(device)).contiguous(memory_format=fmt)).argmax(1)
    _sync(device)
    return {"img_s": n / (time.perf_counter() - t0)}


def throughput(args, overrides: list[str]) -> dict[str, Any]:
    import pytorch_lightning  # noqa: F401  (importing it resets what quiet_lightning sets)

    from nas_lightning.core.builders import build
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    cfg = compose(overrides)
    dm = build(cfg.dataset, "dataset")
    dm.prepare_data()
    dm.setup("fit")
    device = _device(args.device, cfg)
    precision = str(cfg.trainer.get("precision", "32-true"))
    children = _children(cfg, args.children)
    runs: dict[str, dict[str, list[dict]]] = {
        n: {"plain": [], "lightning": []} for n, _ in children
    }
    nchw_name = children[0][0]
    runs[nchw_name]["plain_nchw"] = []
    steps, warmup = args.steps, args.warmup
    eval_sizes = [dm.batch_size]
    if cfg.child.get("eval_batch_size") and cfg.child.eval_batch_size != dm.batch_size:
        eval_sizes.append(int(cfg.child.eval_batch_size))
    for name, _ in children[: args.eval_children]:
        runs[name].update({f"eval_{b}": [] for b in eval_sizes})
    # One untimed child per side: first-use costs (imports, oneDNN set-up) are not a child's.
    run_plain(cfg, dm, children[0][1], warmup + 1, warmup, 0, device, precision)
    run_lightning(cfg, dm, children[0][1], warmup + 1, warmup, 0)
    for rep in range(args.reps):
        for c, (name, genotype) in enumerate(children):
            sides = ["plain", "lightning"] if rep % 2 == 0 else ["lightning", "plain"]
            if name == nchw_name and args.nchw:
                sides.append("plain_nchw")
            for side in sides:
                before = load()
                if side == "lightning":
                    r = run_lightning(cfg, dm, genotype, steps, warmup, seed=c)
                else:
                    r = run_plain(cfg, dm, genotype, steps, warmup, c, device, precision,
                                  channels_last=False if side == "plain_nchw" else None)
                r["load"] = [before, load()]
                runs[name][side].append(r)
                print(f"  {name:10s} {side:10s} rep {rep}: {r['img_s']:7.1f} img/s "
                      f"(load {before})", flush=True)
            if c < args.eval_children and len(eval_sizes) > 1:
                for b in eval_sizes if rep % 2 == 0 else eval_sizes[::-1]:
                    before = load()
                    r = run_eval(cfg, dm, genotype, b, c, device)
                    r["load"] = [before, load()]
                    runs[name][f"eval_{b}"].append(r)
                    print(f"  {name:10s} eval {b:5d} rep {rep}: {r['img_s']:7.1f} img/s "
                          f"(load {before})", flush=True)
    rows = []
    for name, sides in runs.items():
        row: dict[str, Any] = {"child": name, "params": sides["lightning"][0]["params"]}
        for side, rs in sides.items():
            if rs:
                row[f"{side}_img_s"] = round(statistics.median(r["img_s"] for r in rs), 1)
        for key, prefix in (("img_s", ""), ("cpu_img_s", "cpu_")):
            pairs = zip(sides["plain"], sides["lightning"], strict=True)
            ratios = [b[key] / a[key] for a, b in pairs]
            row[f"{prefix}ratio"] = round(statistics.median(ratios), 3)
            row[f"{prefix}ratios"] = [round(x, 3) for x in ratios]
        for side in ("plain", "lightning"):
            row[f"{side}_cpu_img_s"] = round(
                statistics.median(r["cpu_img_s"] for r in sides[side]), 1)
        if len(eval_sizes) > 1 and sides.get(f"eval_{eval_sizes[0]}"):
            pairs = zip(sides[f"eval_{eval_sizes[0]}"], sides[f"eval_{eval_sizes[1]}"],
                        strict=True)
            row["eval_speedup"] = round(statistics.median(b["img_s"] / a["img_s"]
                                                          for a, b in pairs), 3)
        row["load"] = [r["load"] for rs in sides.values() for r in rs]
        rows.append(row)
    return {"steps": steps, "warmup": warmup, "reps": args.reps, "batch_size": dm.batch_size,
            "eval_batch_sizes": eval_sizes,
            "device": str(device), "precision": precision, "rows": rows, "runs": runs,
            "ratio_median": round(statistics.median(r["ratio"] for r in rows), 3),
            "ratio_min": min(r["ratio"] for r in rows),
            "cpu_ratio_median": round(statistics.median(r["cpu_ratio"] for r in rows), 3),
            "cpu_ratio_min": min(r["cpu_ratio"] for r in rows)}


def threads(args, overrides: list[str]) -> dict[str, Any]:
    """Plain-loop images/s of the first child at each torch thread count, alternating.

    On a machine shared with other busy processes, OpenMP threads that wait
    for each other at every op's barrier can make two threads far slower
    than one; on an idle machine two threads are faster.
    """
    import torch

    from nas_lightning.core.builders import build

    cfg = compose(overrides)
    dm = build(cfg.dataset, "dataset")
    dm.setup("fit")
    name, genotype = _children(cfg, args.children[:1])[0]
    precision = str(cfg.trainer.get("precision", "32-true"))
    device = _device(args.device, cfg)
    counts = args.thread_counts
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    initial = torch.get_num_threads()
    steps, warmup = args.thread_steps, 1
    try:
        for rep in range(args.reps):
            for n in counts if rep % 2 == 0 else counts[::-1]:
                torch.set_num_threads(n)
                before = load()
                r = run_plain(cfg, dm, genotype, steps, warmup, 0, device, precision)
                r["load"] = [before, load()]
                runs[n].append(r)
                print(f"  {name} plain, {n} threads, rep {rep}: {r['img_s']:7.1f} img/s "
                      f"(load {before})", flush=True)
    finally:
        torch.set_num_threads(initial)
    return {"child": name, "steps": steps, "warmup": warmup, "reps": args.reps,
            "img_s": {n: round(statistics.median(r["img_s"] for r in rs), 1)
                      for n, rs in runs.items()},
            "cpu_img_s": {n: round(statistics.median(r["cpu_img_s"] for r in rs), 1)
                          for n, rs in runs.items()},
            "load": {n: [r["load"] for r in rs] for n, rs in runs.items()}}


def _tiny_net(genotype, in_channels: int, num_classes: int, pixels: int):
    """A linear classifier: a step costs almost nothing, so what is left is the loop."""
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(),
                               torch.nn.Linear(in_channels * pixels, num_classes))


def overhead(args, overrides: list[str]) -> dict[str, Any]:
    """The framework's cost per training step, in ms: Lightning minus plain on a tiny net."""
    import functools

    import pytorch_lightning  # noqa: F401

    from nas_lightning.core.builders import build
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    cfg = compose(overrides)
    dm = build(cfg.dataset, "dataset")
    dm.setup("fit")
    device = _device(args.device, cfg)
    precision = str(cfg.trainer.get("precision", "32-true"))
    steps = len(dm.data["train"]) // dm.batch_size  # one epoch
    warmup = 4
    images = (steps - warmup) * dm.batch_size
    tiny = functools.partial(_tiny_net, pixels=dm.image_size**2)
    runs: dict[str, list[float]] = {"plain": [], "lightning": []}
    loads = []
    for rep in range(args.reps + 1):  # the first repetition warms up
        for side in ("plain", "lightning") if rep % 2 == 0 else ("lightning", "plain"):
            before = load()
            if side == "plain":
                r = run_plain(cfg, dm, None, steps, warmup, rep, device, precision, model=tiny)
            else:
                r = run_lightning(cfg, dm, None, steps, warmup, rep, model=tiny)
            if rep:
                runs[side].append(1e3 * images / r["img_s"] / (steps - warmup))  # ms/step
                loads.append([before, load()])
    diffs = [b - a for a, b in zip(runs["plain"], runs["lightning"], strict=True)]
    out = {"steps": steps - warmup, "reps": args.reps,
           "plain_ms_per_step": round(statistics.median(runs["plain"]), 3),
           "lightning_ms_per_step": round(statistics.median(runs["lightning"]), 3),
           "overhead_ms_per_step": round(statistics.median(diffs), 3),
           "overheads": [round(d, 3) for d in diffs], "load": loads}
    print(f"  {out}", flush=True)
    return out


# -- 2. controller -----------------------------------------------------------


def controller(args, overrides: list[str]) -> dict[str, Any]:
    import random

    from nas_lightning.core.builders import build, build_partial

    out = {}
    for name in ("reinforce", "ppo"):
        cfg = compose([*overrides, f"strategy={name}"])
        space = build(cfg.search_space, "search_space")
        strategy = build_partial(cfg.strategy, "strategy", space=space, seed=0)
        rng = random.Random(0)
        asks, tells = [], []
        before = load()
        for i in range(args.controller_children):
            space.set_progress(i)
            t0 = time.perf_counter()
            proposal = strategy.ask()
            t1 = time.perf_counter()
            strategy.tell(proposal, rng.uniform(0.5, 0.9))
            t2 = time.perf_counter()
            asks.append(t1 - t0)
            tells.append(t2 - t1)
        out[name] = {
            "children": len(asks),
            "ask_ms_median": round(1e3 * statistics.median(asks), 2),
            "tell_ms_mean": round(1e3 * statistics.fmean(tells), 2),
            "tell_ms_max": round(1e3 * max(tells), 2),
            "per_child_ms": round(1e3 * (statistics.median(asks) + statistics.fmean(tells)), 2),
            "load": [before, load()],
        }
        print(f"  {name}: {out[name]}", flush=True)
    return out


# -- report ---------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    lines = [f"# perf.py results ({result['date']})", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']}", ""]
    tp = result.get("throughput")
    if tp:
        lines += [f"## Child training throughput (images/s, batch {tp['batch_size']}, "
                  f"{tp['steps']} steps, first {tp['warmup']} excluded, median of "
                  f"{tp['reps']} alternating reps, {tp['device']}, {tp['precision']})", "",
                  "| child | params | plain | Lightning | ratio | ratio (CPU time) | plain NCHW | "
                  "validation " + " / ".join(f"b{b}" for b in tp["eval_batch_sizes"]) + " | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in tp["rows"]:
            loads = [x for pair in r["load"] for x in pair]
            evals = " / ".join(str(r.get(f"eval_{b}_img_s", "")) for b in tp["eval_batch_sizes"])
            evals = f"{evals} ({r['eval_speedup']:.2f}x)" if "eval_speedup" in r else ""
            lines.append(f"| {r['child']} | {r['params']:,} | {r['plain_img_s']} | "
                         f"{r['lightning_img_s']} | {r['ratio']:.3f} | {r['cpu_ratio']:.3f} | "
                         f"{r.get('plain_nchw_img_s', '')} | {evals} | {min(loads)}-{max(loads)} |")
        lines += ["", f"Lightning/plain: median {tp['ratio_median']:.3f}, lowest "
                  f"{tp['ratio_min']:.3f} (wall); median {tp['cpu_ratio_median']:.3f}, lowest "
                  f"{tp['cpu_ratio_min']:.3f} (per CPU second, steadier on a loaded machine)", ""]
    ov = result.get("overhead")
    if ov:
        loads = [x for pair in ov["load"] for x in pair]
        lines += [f"## Framework cost per training step (a linear model: the step costs almost "
                  f"nothing; {ov['steps']} steps, median of {ov['reps']} alternating reps, "
                  f"load {min(loads)}-{max(loads)})", "",
                  f"- plain {ov['plain_ms_per_step']} ms/step, Lightning "
                  f"{ov['lightning_ms_per_step']} ms/step: the framework adds "
                  f"{ov['overhead_ms_per_step']} ms per step"]
        if tp:
            step_ms = 1e3 * tp["batch_size"] / statistics.median(
                r["lightning_img_s"] for r in tp["rows"])
            lines.append(f"- a NASNet child's step above takes {step_ms:.0f} ms: the framework's "
                         f"share is {ov['overhead_ms_per_step'] / step_ms:.2%}")
        lines.append("")
    th = result.get("threads")
    if th:
        lines += [f"## Torch threads ({th['child']}, plain loop, {th['steps']} steps, first "
                  f"{th['warmup']} excluded, median of {th['reps']} alternating reps)", "",
                  "| threads | images/s | images per CPU second | load |", "|---|---|---|---|"]
        for n, v in th["img_s"].items():
            loads = [x for pair in th["load"][n] for x in pair]
            lines.append(f"| {n} | {v} | {th['cpu_img_s'][n]} | {min(loads)}-{max(loads)} |")
        lines.append("")
    ctl = result.get("controller")
    if ctl:
        lines += ["## Controller per child (ms)", "", "| strategy | ask (median) | "
                  "tell (mean) | per child | load |", "|---|---|---|---|---|"]
        for name, c in ctl.items():
            lines.append(f"| {name} | {c['ask_ms_median']} | {c['tell_ms_mean']} | "
                         f"{c['per_child_ms']} | {c['load'][0]}-{c['load'][1]} |")
        lines.append("")
    s = result.get("search")
    if s:
        m, p = s["per_child_mean"], s["process"]
        lines += [f"## Search: `{s['command']}` (load {s['load'][0]}-{s['load'][1]})", "",
                  f"- wall {s['wall_s']} s for {s['children']} children (CPU {s['cpu_s']} s); "
                  f"in training steps {s['share_train']:.1%}, in training + validation "
                  f"{s['share_train_val']:.1%}",
                  f"- process: start-up {p['startup_s']} s, before the first child "
                  f"{p['before_first_child_s']} s (logger start {p['logger_start_s']} s), "
                  f"after the last {p['after_last_child_s']} s, exit {p['exit_s']} s",
                  f"- CPU seconds: start-up {s['cpu']['startup_s']}, run_search "
                  f"{s['cpu']['run_search_s']}, children {s['cpu']['evaluate_s']}", "",
                  "| per child (s, mean) | " + " | ".join(m) + " |",
                  "|---" * (len(m) + 1) + "|",
                  "| all | " + " | ".join(f"{v:.3f}" for v in m.values()) + " |",
                  "| after the first | " + " | ".join(
                      f"{v:.3f}" for v in s["per_child_mean_after_first"].values()) + " |", ""]
        if ctl:
            share = {k: c["per_child_ms"] / 1e3 / m["wall"] for k, c in ctl.items()}
            lines.append("Controller share of a default child: " + ", ".join(
                f"{k} {v:.3%}" for k, v in share.items()))
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+",
                        default=["throughput", "overhead", "controller", "search"],
                        choices=["throughput", "overhead", "threads", "controller", "search"])
    parser.add_argument("--thread-counts", nargs="+", type=int, default=[1, 2],
                        help="torch thread counts of the threads section")
    parser.add_argument("--thread-steps", type=int, default=4,
                        help="training steps per measurement of the threads section")
    parser.add_argument("--children", nargs="+", default=DEFAULT_CHILDREN,
                        help="named genotypes or random:<seed> (a uniform sample of the space)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the timing")
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions")
    parser.add_argument("--no-nchw", dest="nchw", action="store_false",
                        help="skip the plain NCHW row")
    parser.add_argument("--eval-children", type=int, default=2,
                        help="children whose validation speed is measured at batch sizes "
                        "child.batch_size and child.eval_batch_size")
    parser.add_argument("--controller-children", type=int, default=30)
    parser.add_argument("--device", default=None,
                        help="plain loop's device (default: cuda when the trainer config asks "
                        "for a GPU and one is there, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="config overrides for throughput/controller (e.g. trainer=gpu)")
    parser.add_argument("--search-args", nargs="*", default=[],
                        help="overrides of the timed search (default: none, the default search)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 children, 4 steps, 1 rep, search debug=fast")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/perf.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.children, args.steps, args.warmup, args.reps = args.children[:2], 4, 1, 1
        args.controller_children = min(args.controller_children, 10)
        args.search_args = args.search_args or ["debug=fast"]
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "command": "python benchmarks/perf.py " + shlex.join(argv if argv is not None
                                                             else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, python {platform.python_version()}",
        "load_start": load(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for section in args.sections:
        print(f"[{section}] load {load()}", flush=True)
        if section == "throughput":
            result["throughput"] = throughput(args, args.overrides)
        elif section == "overhead":
            result["overhead"] = overhead(args, args.overrides)
        elif section == "threads":
            result["threads"] = threads(args, args.overrides)
        elif section == "controller":
            result["controller"] = controller(args, args.overrides)
        else:
            result["search"] = perf_search.search(args, args.search_args)
        out.write_text(json.dumps(result, indent=1))  # partial results survive a crash
    result["load_end"] = load()
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(table(result))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
