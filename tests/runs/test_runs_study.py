"""A run folder as an Optuna study (study.db): one parameter per decision, rewards as values."""

from __future__ import annotations

import json

import optuna
import yaml

from nas_lightning.runs.study import STUDY_NAME, write_study
from nas_lightning.spaces import ListSpace

SPACE = {"_target_": "nas_lightning.spaces.ListSpace",
         "decisions": [["op", ["conv3", "conv5", "pool"]], ["width", [16, 32]]]}


def _run(tmp_path, records):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"search_space": SPACE}))
    (tmp_path / "children.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def test_every_child_becomes_a_trial_with_its_choices_reward_and_number(tmp_path):
    space = ListSpace(SPACE["decisions"])
    records = []
    for index, (actions, reward) in enumerate([((0, 1), 0.7), ((2, 0), None), ((1, 1), 0.9)]):
        records.append({"index": index, "status": "ok" if reward else "failed",
                        "reward": reward, "val_acc": reward, "actions": list(actions),
                        "genotype": space.decode(actions), "error": None if reward else "boom"})
    path = write_study(_run(tmp_path, records))
    assert path == tmp_path / "study.db"
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[1].params == {"op": "pool", "width": 16}
    assert study.best_trial.params == {"op": "conv5", "width": 32}
    assert study.best_value == 0.9
    assert study.best_trial.user_attrs["child"] == 2
    assert json.loads(study.best_trial.user_attrs["genotype"]) == {"op": "conv5", "width": 32}
    assert study.trials[1].user_attrs["error"] == "boom"


def test_the_study_is_rewritten_to_match_the_records(tmp_path):
    record = {"index": 0, "status": "ok", "reward": 0.5, "actions": [0, 0], "genotype": {}}
    run = _run(tmp_path, [record])
    write_study(run)
    with (run / "children.jsonl").open("a") as f:
        f.write(json.dumps({**record, "index": 1, "reward": 0.6, "actions": [1, 1]}) + "\n")
    path = write_study(run)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    assert [t.value for t in study.trials] == [0.5, 0.6]
    assert not list(run.glob(".study.db*"))


def test_study_command_writes_one_study_per_run(tmp_path, capsys):
    from nas_lightning.runs.__main__ import main

    record = {"index": 0, "status": "ok", "reward": 0.5, "actions": [0, 0], "genotype": {}}
    (tmp_path / "a").mkdir()
    _run(tmp_path / "a", [record])
    main(["study", str(tmp_path / "a")])
    assert "study.db" in capsys.readouterr().out
    assert (tmp_path / "a" / "study.db").is_file()
