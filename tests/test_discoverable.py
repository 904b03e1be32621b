"""What a newcomer can find without reading the source (issue 13, item 8): each problem's and
optimizer's parameters in `optbench list`'s table, a pointer to them from `run --help`, and a
run header that shows only the parameters that apply."""

from __future__ import annotations

from clitools import run_main
from optbench.plugins import get_registry


def test_list_problems_shows_every_declared_parameter_with_type_default_and_meaning(capsys):
    code, out, _ = run_main(capsys, "list", "problems")
    assert code == 0
    registry = get_registry()
    for name in registry.names("problem"):
        section = out.split(f"problem {name}: -P KEY=VALUE\n", 1)[1].split("\n\n", 1)[0]
        declared = registry.get("problem", name).params
        if not declared:
            assert section.strip() == "(no parameters)"
        for p in declared:
            row = next(line.split() for line in section.splitlines()
                       if line.split()[:1] == [p.name])
            assert row[1] == p.kind, (name, p.name)
            assert p.help.split()[0] in " ".join(row[3:]), (name, p.name)
            assert p.accepted() in " ".join(row[3:]), (name, p.name)


def test_list_optimizers_shows_their_hyperparameters(capsys):
    code, out, _ = run_main(capsys, "list", "optimizers")
    assert code == 0
    section = out.split("optimizer nadam: -O KEY=VALUE\n", 1)[1].split("\n\n", 1)[0]
    lr = next(line.split() for line in section.splitlines() if line.split()[:1] == ["lr"])
    assert lr[:3] == ["lr", "float", "0.002"]  # torch.optim.NAdam's default


def test_plain_list_points_to_the_parameters(capsys):
    code, out, _ = run_main(capsys, "list")
    assert code == 0 and "`optbench list problems`" in out


def test_run_help_names_problems_and_points_to_their_parameters(capsys):
    code, out, _ = run_main(capsys, "run", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "regression, puzzle, expr" in text
    assert "`optbench list problems` lists them all, with their -P parameters" in text
    assert "`optbench list optimizers` shows each optimizer's" in text


def test_the_run_header_leaves_out_what_does_not_apply(capsys, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("x,y\n0,1\n1,3\n2,7\n3,13\n")
    code, out, _ = run_main(capsys, "run", "--backend", "autograd", "--steps", "2",
                            "--no-advice", "-P", f"data={points}")
    assert code == 0
    header = out.splitlines()[0]
    assert header.startswith("problem    regression (degree=2, data=")
    for drawn in ("coefficients", "n_samples", "x_scale", "noise"):
        assert drawn not in header
    code, out, _ = run_main(capsys, "run", "--backend", "autograd", "--steps", "2",
                            "--no-advice")
    assert "n_samples=20" in out.splitlines()[0]
