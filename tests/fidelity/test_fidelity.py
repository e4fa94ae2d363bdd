"""The proxy check (``python -m nas_lightning.fidelity``) and the rank statistics it reports."""

from __future__ import annotations

import json
import math
import random

import pytest
from conftest import TABLE, TINY, compose_config

from nas_lightning.core.ranks import average_ranks, bootstrap_interval, kendall_tau_b, spearman
from nas_lightning.errors import ConfigError
from nas_lightning.execution.runner import make_runner
from nas_lightning.fidelity import check_proxy, recommendation
from nas_lightning.fidelity.check import summary_lines, write_report


def test_rank_correlations_on_known_orders():
    x = [1, 2, 3, 4, 5]
    assert kendall_tau_b(x, x) == 1 and spearman(x, x) == pytest.approx(1)
    assert kendall_tau_b(x, x[::-1]) == -1 and spearman(x, x[::-1]) == pytest.approx(-1)
    assert math.isnan(kendall_tau_b(x, [2] * 5)) and math.isnan(spearman(x, [2] * 5))
    assert average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    # one discordant pair of 6 with one tie in y: (5 - 0) / sqrt(6 * 5)... by hand:
    # pairs of [1,2,3,4] vs [1,1,3,2]: C=4, D=1, ties in y only=1 -> (4-1)/sqrt(5*6)
    assert kendall_tau_b([1, 2, 3, 4], [1, 1, 3, 2]) == pytest.approx(3 / math.sqrt(30))
    with pytest.raises(ValueError, match="different lengths"):
        kendall_tau_b([1, 2], [1])


def test_rank_correlations_agree_with_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for _ in range(20):
        x = [rng.randint(0, 5) for _ in range(12)]
        y = [rng.randint(0, 5) for _ in range(12)]
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_bootstrap_interval_holds_the_estimate():
    rng = random.Random(0)
    x = [rng.random() for _ in range(20)]
    y = [v + 0.3 * rng.random() for v in x]
    lo, hi = bootstrap_interval(x, y, kendall_tau_b, samples=500)
    assert -1 <= lo <= kendall_tau_b(x, y) <= hi <= 1


@pytest.mark.parametrize(
    "noise, fidelity, averaged, words",
    [
        (0.9, 0.8, 0.8, "keep the proxy"),
        (0.3, 0.4, 0.6, "mostly seed noise"),
        (0.3, 0.4, 0.45, "mostly seed noise"),
        (0.8, 0.4, 0.4, "repeatable but ranks only loosely"),
        (math.nan, math.nan, math.nan, "too few architectures"),
    ],
)
def test_recommendation_follows_the_measured_correlations(noise, fidelity, averaged, words):
    text = recommendation(noise, fidelity, averaged, seeds=2, cost_ratio=4.0)
    assert words in text
    assert ("averaging 2 seeds" in text) == (words == "mostly seed noise" and averaged == 0.6)


def _table_cfgs(tmp_path, *extra):
    base = [f"run_dir={tmp_path / 'children'}", *TINY, *TABLE, *extra]
    return compose_config("search", base), compose_config("search", [*base, "child.epochs=4"])


def test_a_check_of_a_seed_free_proxy_finds_no_noise_and_resumes(tmp_path):
    """Table children do not depend on the seed or the recipe: every correlation is 1."""
    proxy, longer = _table_cfgs(tmp_path)
    built = []

    def factory(cfg):
        built.append(int(cfg.child.epochs))
        return make_runner(cfg)

    out = tmp_path / "check"
    report = check_proxy(proxy, longer, out, archs=8, seeds=2, runner_factory=factory)
    assert sorted(built) == [1, 4]
    assert len(report.rows) == 8 and report.failed == 0
    assert len({tuple(r["actions"]) for r in report.rows}) == 8
    for key in ("seed_vs_seed", "proxy_vs_longer", "seed_mean_vs_longer"):
        assert report.stats[key]["kendall_tau_b"] == pytest.approx(1.0)
    assert "keep the proxy" in report.recommendation
    lines = (out / "trainings.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 8 * 3  # a header, then 2 proxy seeds + 1 longer per architecture

    files = write_report(report, out)
    saved = json.loads(open(files["json"]).read())
    assert saved["stats"]["proxy_vs_longer"]["n"] == 8 and len(saved["rows"]) == 8
    assert open(files["png"], "rb").read(4) == b"\x89PNG"
    assert "seed vs seed (noise floor)" in "\n".join(summary_lines(report))

    built.clear()  # the same check again: everything is in trainings.jsonl
    again = check_proxy(proxy, longer, out, archs=8, seeds=2, runner_factory=factory)
    assert built == [] and again.stats == report.stats
    with pytest.raises(ConfigError, match="holds a different check"):
        check_proxy(proxy, longer, out, archs=8, seeds=3, runner_factory=factory)


def test_a_reference_check_lends_its_longer_trainings(tmp_path):
    """A candidate proxy is checked against an earlier check's longer trainings."""
    proxy, longer = _table_cfgs(tmp_path)
    first = check_proxy(proxy, longer, tmp_path / "a", archs=5, seeds=2)
    candidate, _ = _table_cfgs(tmp_path, "child.batch_size=32")
    same_longer = compose_config("search", [f"run_dir={tmp_path / 'children'}", *TINY, *TABLE,
                                            "child.epochs=4"])
    built = []

    def factory(cfg):
        built.append(int(cfg.child.epochs))
        return make_runner(cfg)

    second = check_proxy(candidate, same_longer, tmp_path / "b", archs=5, seeds=2,
                         runner_factory=factory, reference=tmp_path / "a")
    assert built == [1]  # only the candidate proxy trained
    assert [r["longer"] for r in second.rows] == [r["longer"] for r in first.rows]
    assert second.settings["proxy"]["batch_size"] == 32
    lines = (tmp_path / "b" / "trainings.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 5 * 3  # the folder holds the longer trainings it used
    built.clear()  # and resumes without the reference
    check_proxy(candidate, same_longer, tmp_path / "b", archs=5, seeds=2,
                runner_factory=factory)
    assert built == []

    other_longer = compose_config("search", [f"run_dir={tmp_path / 'children'}", *TINY, *TABLE,
                                             "child.epochs=3"])
    with pytest.raises(ConfigError, match=r"reference: .*\(differs in longer\)"):
        check_proxy(candidate, other_longer, tmp_path / "c", archs=5, seeds=2,
                    reference=tmp_path / "a")
    with pytest.raises(ConfigError, match="differs in archs"):
        check_proxy(candidate, same_longer, tmp_path / "d", archs=4, seeds=2,
                    reference=tmp_path / "a")
    with pytest.raises(ConfigError, match="holds no trainings.jsonl"):
        check_proxy(candidate, same_longer, tmp_path / "e", archs=5, seeds=2,
                    reference=tmp_path / "nothing")


def test_a_check_of_another_model_is_another_check(tmp_path):
    proxy, longer = _table_cfgs(tmp_path)
    check_proxy(proxy, longer, tmp_path / "a", archs=3, seeds=1)
    wider, wider_longer = _table_cfgs(tmp_path, "model.filters=8")
    with pytest.raises(ConfigError, match="holds a different check"):
        check_proxy(wider, wider_longer, tmp_path / "a", archs=3, seeds=1)


def test_a_torn_last_line_is_trained_again(tmp_path):
    proxy, longer = _table_cfgs(tmp_path)
    out = tmp_path / "check"
    check_proxy(proxy, longer, out, archs=4, seeds=1)
    path = out / "trainings.jsonl"
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 1] + '{"arch": 3, "act')
    report = check_proxy(proxy, longer, out, archs=4, seeds=1)
    assert report.failed == 0 and len(report.rows) == 4


def test_bad_settings_are_one_line_errors(tmp_path):
    proxy, longer = _table_cfgs(tmp_path)
    with pytest.raises(ConfigError, match="archs: must be >= 3"):
        check_proxy(proxy, longer, tmp_path / "c", archs=2)
    with pytest.raises(ConfigError, match="seeds: must be >= 1"):
        check_proxy(proxy, longer, tmp_path / "c", seeds=0)


def test_the_command_line_writes_the_report(tmp_path, capsys):
    from nas_lightning.fidelity.__main__ import main

    out = tmp_path / "check"
    main([*TABLE, "--archs", "5", "--seeds", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "recommendation: keep the proxy" in printed
    assert (out / "fidelity.md").is_file() and (out / "fidelity.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["search_space.nope=1", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_a_real_proxy_check_trains_children(tmp_path):
    base = [f"run_dir={tmp_path / 'children'}", *TINY, "search_space.num_blocks=1"]
    proxy = compose_config("search", base)
    longer = compose_config("search", [*base, "child.epochs=2"])
    report = check_proxy(proxy, longer, tmp_path / "check", archs=3, seeds=2)
    assert report.failed == 0
    assert all(0 <= v <= 1 for r in report.rows for v in [*r["proxy"], r["longer"]])
    assert report.stats["cost"]["ratio"] > 1  # twice the epochs take longer


def test_overrides_may_come_between_options():
    from nas_lightning.fidelity.__main__ import parse

    args = parse(["a=1", "--archs", "5", "b=2", "--longer", "child.epochs=3", "c=3"])
    assert args.overrides == ["a=1", "b=2", "c=3"] and args.archs == 5
    assert args.longer == ["child.epochs=3"]
