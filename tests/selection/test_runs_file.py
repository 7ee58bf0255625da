"""RUNS.jsonl, runs from elsewhere: every line checked with one clear error, and the arrays it gives
a surrogate fit recover a known truth."""
import json

import numpy as np
import pytest

from planner.runs_file import Run, read_runs, run_arrays, sources_of
from planner.status import InstanceError
from planner.selection.surrogate import fit_surrogate, masks_from_subsets, spearman


def _file(tmp_path, lines, name="RUNS.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_reads_runs_target_agnostic(tmp_path):
    path = _file(tmp_path, [
        {"subset": ["b", "a"], "loss": 0.5, "seed": 0},
        "",
        {"subset": [], "loss": 0.7, "seed": 1},
        {"subset": ["a", "b"], "loss": 0.45, "seed": 1, "losses": {"T": 0.45, "a": 0.3, "b": 0.2}},
        {"subset": [3], "loss": 1, "seed": 2},
    ])
    runs = read_runs(path)
    assert runs[0] == Run(("a", "b"), 0, 0.5, None, 1)
    assert runs[1].subset == () and runs[1].line == 3
    assert runs[2].losses == {"T": 0.45, "a": 0.3, "b": 0.2}
    assert runs[3].subset == ("3",) and isinstance(runs[3].loss, float)
    assert sources_of(runs) == ["3", "a", "b"]
    arr = run_arrays(runs)
    assert arr.sources == ["3", "a", "b"]
    assert arr.masks.tolist() == [[0, 1, 1], [0, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert arr.f.tolist() == [0.5, 0.7, 0.45, 1.0] and arr.seeds.tolist() == [0, 1, 1, 2]
    assert arr.group.tolist() == [0, 1, 0, 2] and arr.unique == [(1, 2), (), (0,)]
    assert arr.single_task.tolist() == [False, True, False, False]
    assert arr.replicate_groups() == {(1, 2): [0.5, 0.45], (): [0.7], (0,): [1.0]}
    masks, mean, count = arr.means()
    assert masks.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert mean.tolist() == pytest.approx([0.475, 0.7, 1.0]) and count.tolist() == [2, 1, 1]
    # with a task list: its order, and sources never sampled are reported
    arr = run_arrays(runs, sources_of(runs, "T", ["T", "a", "b", "c", "3"]))
    assert arr.sources == ["a", "b", "c", "3"] and arr.never_sampled() == ["c"]
    with pytest.raises(ValueError, match="not a source"):
        run_arrays(runs, ["a", "b"])


@pytest.mark.parametrize("line, why", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got a list"),
    ({"subset": ["a"], "loss": 0.5}, "missing key 'seed'"),
    ({"subset": ["a"], "seed": 0}, "missing key 'loss'"),
    ({"loss": 0.1, "seed": 0}, "missing key 'subset'"),
    ({"subset": ["a"], "loss": 0.5, "seed": 0, "note": 1}, "unknown key 'note'"),
    ({"subset": "a", "loss": 0.5, "seed": 0}, "'subset' must be a list"),
    ({"subset": ["a", "a"], "loss": 0.5, "seed": 0}, "'a' appears twice"),
    ({"subset": [True], "loss": 0.5, "seed": 0}, "task ids must be strings, got a boolean"),
    ({"subset": [""], "loss": 0.5, "seed": 0}, "empty"),
    ('{"subset": ["a"], "loss": NaN, "seed": 0}', "'loss' must be finite"),
    ('{"subset": ["a"], "loss": Infinity, "seed": 0}', "'loss' must be finite"),
    ({"subset": ["a"], "loss": "0.5", "seed": 0}, "'loss' must be a number, got a string"),
    ({"subset": ["a"], "loss": True, "seed": 0}, "'loss' must be a number, got a boolean"),
    ({"subset": ["a"], "loss": 0.5, "seed": 1.5}, "'seed' must be an integer, got a number"),
    ({"subset": ["a"], "loss": 0.5, "seed": None}, "'seed' must be an integer, got null"),
    ({"subset": ["a"], "loss": 0.5, "seed": 0, "losses": [1]}, "'losses' must be an object"),
    ('{"subset": ["a"], "loss": 0.5, "seed": 0, "losses": {"a": NaN}}', "'losses' of 'a' must be finite"),
    ({"subset": ["a"], "loss": 0.5, "seed": 0, "losses": {"b": 0.1, "c": 0.2}}, "only the target may be"),
])
def test_bad_lines(tmp_path, line, why):
    path = _file(tmp_path, [{"subset": [], "loss": 0.9, "seed": 0}, line])
    with pytest.raises(InstanceError) as info:
        read_runs(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 2: ") and why in msg and "\n" not in msg
    assert info.value.exit_code == 2


def test_target_tasks_duplicates_and_contradictions(tmp_path):
    def err(lines, **kw):
        with pytest.raises(InstanceError) as info:
            read_runs(_file(tmp_path, lines), **kw)
        return str(info.value)

    ok = {"subset": ["a"], "loss": 0.5, "seed": 0}
    assert "line 2: the target 'T' is in 'subset'" in err([ok, {"subset": ["T", "a"], "loss": 0.5, "seed": 1}], target="T")
    assert "line 1: unknown task 'z' in 'subset' (not among the 3 tasks given)" in err(
        [{"subset": ["z"], "loss": 0.5, "seed": 0}], tasks=["T", "a", "b"])
    assert "line 1: unknown task 'z' in 'losses'" in err(
        [{"subset": ["a"], "loss": 0.5, "seed": 0, "losses": {"z": 0.1}}], tasks=["T", "a", "z0"])
    assert "'losses' names 'b', which is neither the target nor in 'subset'" in err(
        [{"subset": ["a"], "loss": 0.5, "seed": 0, "losses": {"b": 0.1}}], target="T")
    assert "'losses' gives the target 'T' 0.4 but 'loss' is 0.5" in err(
        [{"subset": ["a"], "loss": 0.5, "seed": 0, "losses": {"T": 0.4}}], target="T")
    assert "the target 'X' is not among the 3 tasks given" in err([ok], target="X", tasks=["T", "a", "b"])
    # the same subset (in any order) and seed twice: a duplicate, or a contradiction
    assert "line 3: duplicate of line 1 (same subset and seed)" in err(
        [{"subset": ["a", "b"], "loss": 0.5, "seed": 0}, ok, {"subset": ["b", "a"], "loss": 0.5, "seed": 0}])
    assert "line 2: contradicts line 1: same subset and seed, loss 0.5 there, 0.6 here" in err(
        [ok, {"subset": ["a"], "loss": 0.6, "seed": 0}])
    # another seed is a replicate, not a duplicate
    assert len(read_runs(_file(tmp_path, [ok, {"subset": ["a"], "loss": 0.6, "seed": 1}]))) == 2
    assert "no runs" in err(["", "  "])
    assert "no such file" in str(pytest.raises(InstanceError, read_runs, tmp_path / "missing.jsonl").value)
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    assert "cannot read it" in str(pytest.raises(InstanceError, read_runs, tmp_path / "bin.jsonl").value)
    # a file of good lines with the target and the task list
    runs = read_runs(_file(tmp_path, [ok, {"subset": [], "loss": 0.7, "seed": 0, "losses": {"T": 0.7}}]),
                     target="T", tasks=["T", "a", "b"])
    assert [r.subset for r in runs] == [("a",), ()]


def test_known_linear_truth_comes_back_ranked(tmp_path):
    """30 sources, 600 runs of random subsets with a linear truth plus noise, written as RUNS.jsonl and
    read back: the fitted theta ranks the sources as the truth does."""
    rng = np.random.default_rng(7)
    k, n = 30, 600
    sources = [f"s{i:02d}" for i in range(k)]
    theta = np.linspace(-0.05, 0.05, k)
    rng.shuffle(theta)
    lines = []
    for r in range(n):
        size = int(rng.integers(3, 11))
        sub = sorted(rng.choice(k, size=size, replace=False).tolist())
        loss = 0.6 + theta[sub].sum() + rng.normal(0, 0.01)
        lines.append({"subset": [sources[i] for i in rng.permutation(sub)], "loss": float(loss), "seed": r % 3})
    for seed in range(3):
        lines.append({"subset": [], "loss": 0.6 + float(rng.normal(0, 0.01)), "seed": 100 + seed})
    path = _file(tmp_path, lines)
    runs = read_runs(path, target="T", tasks=["T", *sources])
    arr = run_arrays(runs, sources_of(runs, "T", ["T", *sources]))
    assert arr.masks.shape == (n + 3, k) and arr.single_task.sum() == 3
    assert np.array_equal(arr.masks, masks_from_subsets(arr.subsets, k))
    model = fit_surrogate(arr.masks, arr.f, kind="linear")
    assert spearman(model.coef_, theta) >= 0.95
    assert model.intercept_ == pytest.approx(0.6, abs=0.02)


def test_estimate_from_runs_through_the_cli(tmp_path):
    """`planner estimate --runs`: 600 runs of 30 sources drawn from a linear truth plus noise come back as
    a selection instance whose scores rank the sources as the truth does; --data with --runs is refused."""
    import json

    from click.testing import CliRunner

    from planner.cli import main
    from planner.instance import load_instance

    rng = np.random.default_rng(11)
    k, n = 30, 600
    sources = [f"s{i:02d}" for i in range(k)]
    theta = np.linspace(-0.05, 0.05, k)
    rng.shuffle(theta)
    lines = []
    for r in range(n):
        sub = sorted(rng.choice(k, size=5, replace=False).tolist())
        lines.append({"subset": [sources[i] for i in sub], "loss": float(0.6 + theta[sub].sum() + rng.normal(0, 0.01)),
                      "seed": r})
    lines += [{"subset": [], "loss": 0.6 + float(rng.normal(0, 0.01)), "seed": 1000 + s} for s in range(3)]
    lines += [{"subset": lines[0]["subset"], "loss": lines[0]["loss"] + 0.005, "seed": 2000}]
    path = _file(tmp_path, lines)
    out = tmp_path / "inst.json"
    res = CliRunner().invoke(main, ["estimate", "--runs", str(path), "--target", "T", "-o", str(out),
                                    "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    problem = load_instance(out)
    fitted = np.array([problem.linear[problem.sources.index(t)] for t in sources])
    assert spearman(fitted, theta) >= 0.95
    meta = json.loads(out.read_text())["meta"]
    assert meta["diagnostics"]["n_subsets"] == n and meta["diagnostics"]["noise_floor"] > 0
    both = CliRunner().invoke(main, ["estimate", "--runs", str(path), "--data", "x.csv", "--target", "T",
                                     "-o", str(tmp_path / "y.json")])
    assert both.exit_code == 2 and "not both" in both.output
    none = CliRunner().invoke(main, ["estimate", "--target", "T", "-o", str(tmp_path / "y.json")])
    assert none.exit_code == 2 and "--runs" in none.output
