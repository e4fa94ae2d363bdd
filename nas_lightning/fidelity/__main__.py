"""Command line of the proxy check.

    python -m nas_lightning.fidelity                          # the default search's proxy
    python -m nas_lightning.fidelity --archs 16 --seeds 2 child.epochs=2
    python -m nas_lightning.fidelity experiment=nas_rl --longer child.epochs=8
    python -m nas_lightning.fidelity model.filters=8 child.epochs=2 \
        --longer model.filters=16 --longer child.epochs=4 --reference runs/fidelity/<earlier>

Positional arguments are overrides of the search config, as ``search.py``
takes them: the proxy checked is that search's child recipe. ``--longer``
gives the reference recipe's overrides on top (default: 4x ``child.epochs``).
Writes ``trainings.jsonl``, ``fidelity.json``, ``fidelity.md`` and
``fidelity.png`` into ``--out`` (default ``runs/fidelity/<date>_<time>``);
running the same command with the same ``--out`` continues a check that was
interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from nas_lightning.entry import exit_with, one_line_errors, override_error


def _compose(overrides: list[str]):
    """The search config with ``overrides``; a bad one is the search's one-line error."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from nas_lightning.utils import config_dir

    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("search", overrides=overrides)
    except HydraException as err:
        exit_with(override_error(err, "search", overrides))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nas_lightning.fidelity",
        description="Check the search's proxy: seed noise and agreement with longer training.",
    )
    parser.add_argument("overrides", nargs="*", help="search config overrides (key=value)")
    parser.add_argument("--archs", type=int, default=16, help="random architectures (16)")
    parser.add_argument("--seeds", type=int, default=2, help="proxy seeds per architecture (2)")
    parser.add_argument("--longer", action="append", default=None, metavar="KEY=VALUE",
                        help="the reference recipe's overrides (default: 4x child.epochs)")
    parser.add_argument("--seed", type=int, default=0, help="draws the architectures (0)")
    parser.add_argument("--out", default=None, help="the check's folder")
    parser.add_argument("--reference", default=None, metavar="DIR",
                        help="an earlier check of the same architectures and longer recipe: "
                             "its longer trainings are reused (compare candidate proxies)")
    return parser.parse_intermixed_args(argv)  # overrides before, between or after options


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from nas_lightning.fidelity.check import check_proxy, summary_lines, write_report

    out = args.out or time.strftime("runs/fidelity/%Y-%m-%d_%H-%M-%S")
    base = [*args.overrides, f"run_dir={out}/children", "logger=csv"]
    proxy_cfg = _compose(base)
    longer = args.longer or [f"child.epochs={4 * int(proxy_cfg.child.epochs)}"]
    longer_cfg = _compose([*base, *longer])
    report = check_proxy(proxy_cfg, longer_cfg, out, archs=args.archs, seeds=args.seeds,
                         seed=args.seed, reference=args.reference)
    files = write_report(report, out)
    for line in summary_lines(report):
        print(line)
    print(f"written: {files['md']}, {files['png']}, {files['json']}")


if __name__ == "__main__":
    main(sys.argv[1:])
