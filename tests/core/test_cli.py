"""The CLI through click's CliRunner: every exit code, --json, -o, help."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.generators import random_selection_dict

ROOT_INSTANCES = __import__("pathlib").Path(__file__).resolve().parents[2] / "instances"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(tmp_path, data, name="i.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_exit_0_and_json_is_one_object(tmp_path):
    path = write(tmp_path, random_selection_dict(8, 0.3, seed=1))
    out = tmp_path / "r.json"
    res = run("solve", path, "--json", "-o", out)
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["status"] == "optimal" and obj["kind"] == "selection" and obj["schema"] == 1
    assert set(obj) >= {"schema", "instance", "kind", "status", "objective", "bound", "solution", "solver", "seconds"}
    assert json.loads(out.read_text()) == obj
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_exit_2_for_bad_file_one_line_no_output(tmp_path):
    data = random_selection_dict(4, 0.0, seed=1)
    data["surrogate"]["linear"]["s000"] = "high"
    path = write(tmp_path, data)
    out = tmp_path / "r.json"
    res = run("solve", path, "-o", out)
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0
    assert "surrogate.linear.s000" in res.stderr and "Traceback" not in res.output
    assert not out.exists()
    assert run("validate", path).exit_code == 2


def test_exit_2_for_bad_options(tmp_path):
    path = write(tmp_path, random_selection_dict(4, 0.0, seed=1))
    assert run("solve", path, "--solver", "gurobi").exit_code == 2
    assert run("solve", path, "--time-limit", "-1").exit_code == 2
    res = run("solve", path, "--solver", "dp")  # dp solves budget instances only
    assert res.exit_code == 2 and "does not solve selection instances" in res.stderr


def test_exit_3_infeasible(tmp_path):
    data = random_selection_dict(4, 0.0, seed=1, constraints={"min_size": 3, "exclude": ["s000", "s001"]})
    res = run("solve", write(tmp_path, data), "--json", "-o", tmp_path / "r.json")
    assert res.exit_code == 3
    assert json.loads(res.stdout)["status"] == "infeasible"
    assert not (tmp_path / "r.json").exists()


def test_exit_4_no_solution_at_zero_time_limit(tmp_path):
    path = write(tmp_path, random_selection_dict(30, 0.2, seed=1))
    res = run("solve", path, "--solver", "highs", "--time-limit", "0", "--json")
    assert res.exit_code == 4
    assert json.loads(res.stdout)["status"] == "no_solution"


def test_exit_1_runtime_error(tmp_path):
    path = write(tmp_path, random_selection_dict(40, 0.1, seed=1))
    res = run("solve", path, "--solver", "brute")
    assert res.exit_code == 1
    assert "refuses more than" in res.stderr and "Traceback" not in res.output


def test_output_folder_missing_is_a_clear_error(tmp_path):
    path = write(tmp_path, random_selection_dict(5, 0.1, seed=1))
    res = run("solve", path, "-o", tmp_path / "no" / "such" / "dir" / "r.json")
    assert res.exit_code == 1
    assert "No such file" in res.stderr


def test_validate_ok():
    res = run("validate", ROOT_INSTANCES / "selection_small.json")
    assert res.exit_code == 0 and "ok" in res.stdout


@pytest.mark.parametrize("path", sorted(p for p in ROOT_INSTANCES.glob("*") if p.suffix in (".json", ".yaml", ".yml")), ids=lambda p: p.name)
def test_every_shipped_instance_validates(path):
    res = run("validate", path)
    assert res.exit_code == 0, res.output


def test_every_command_has_help():
    for name, command in main.commands.items():
        res = run(name, "--help")
        assert res.exit_code == 0, name
        assert (command.help or command.short_help or "").strip(), f"{name} has no help text"
        if hasattr(command, "commands"):
            for sub in command.commands:
                assert run(name, sub, "--help").exit_code == 0, f"{name} {sub}"


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "planner", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "solve" in res.stdout
