"""--config FILE on every command (a mapping of option names used as defaults; the command line wins),
and the settings and version that plan, group and budget reports carry."""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from planner import __version__
from planner.cli import main
from planner_models.data import synthetic_classification


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    d = synthetic_classification(k=5, p=4, n_per_task=100, seed=3)
    path = tmp_path_factory.mktemp("config") / "tasks.csv"
    lines = ["task," + ",".join(d.feature_names) + ",y"]
    lines += [d.task_names[t] + "," + ",".join(f"{v:.5f}" for v in x) + f",{y}" for x, t, y in zip(d.X, d.task, d.y)]
    path.write_text("\n".join(lines) + "\n")
    return path, d.task_names


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_command_has_config():
    found = list(_commands(main))
    assert len(found) > 10
    for path, cmd in found:
        assert any(p.opts == ["--config"] for p in cmd.params), path


def test_config_gives_defaults_command_line_wins_and_report_has_settings(csv_path, tmp_path):
    path, names = csv_path
    cfg = tmp_path / "plan.yaml"
    cfg.write_text(f"data: {path}\ntask-column: task\nlabel_column: y\ntarget: {names[0]}\nsubsets: 10\nalpha: 2\n"
                   "bootstrap: 0\nfinal-seeds: 1\nepochs: 3\nhidden: [8]\ndevice: cpu\nseed: 7\n")
    res = CliRunner().invoke(main, ["plan", "--config", str(cfg), "--epochs", "2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    s = report["settings"]
    assert report["version"] == __version__
    epochs = s["epochs"] if "epochs" in s else s["train"]["epochs"]  # the options, or the library's own settings
    assert epochs == 2 and s["seed"] == 7 and s["final_seeds"] == 1 and s["n_boot"] == 0
    assert "as_json" not in s and "store" not in s


def test_group_and_budget_reports_have_settings_and_version(csv_path, tmp_path):
    path, _ = csv_path
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"data": str(path), "task-column": "task", "label-column": "y", "epochs": 2,
                               "hidden": "4", "device": "cpu"}))
    res = CliRunner().invoke(main, ["group", "--config", str(cfg), "--method", "hoa", "--max-groups", "2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["version"] == __version__ and report["settings"]["method"] == "hoa"
    assert report["settings"]["epochs"] == 2 and report["settings"]["seed"] == 0
    res = CliRunner().invoke(main, ["budget", "--config", str(cfg), "--costs", "*=1", "--budget", "20", "--initial", "20",
                                    "--points", "2", "--repeats", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["version"] == __version__ and report["settings"]["money"] == 20 and report["settings"]["epochs"] == 2


@pytest.mark.parametrize("text, why", [
    ("epochz: 3\n", "unknown option 'epochz' for planner plan"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_bad_config_is_one_line_usage_error(tmp_path, text, why):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    res = CliRunner().invoke(main, ["plan", "--config", str(cfg)])
    assert res.exit_code == 2 and why in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_config_on_a_subcommand_and_a_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("format: json\n")
    res = CliRunner().invoke(main, ["runs", "export", str(tmp_path / "none.sqlite"), "--config", str(cfg)])
    assert res.exit_code == 2 and "no such store" in res.output  # the config was read, the store is missing
    res = CliRunner().invoke(main, ["solve", "x.json", "--config", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "missing.yaml: file not found" in res.output
