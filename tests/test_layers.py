"""Imports run one way (docs/architecture.md): every import in the library, read from the source
with `ast` (function-level imports included), must point to its own part or a lower layer."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# part -> layer; a module may import its own part or a part of a lower layer
LAYERS = {
    "base": 0,        # errors, names, checks, formatting, atomic, storage, interrupt, chaos
    "laws": 1,        # pure math
    "tables": 2,      # runs, mixture
    "fits": 3,        # table-level fits
    "data": 3,
    "train": 4,
    "config": 5,
    "predictor": 6,
    "tuning": 6,
    "searchers": 7,
    "report": 7,
    "pipeline": 8,
    "comparison": 9,  # `compare`: a Tune experiment of given target runs, over the pipeline
    "api": 9,         # autoscale_ray.search(...)
    "verbs": 10,
    "cli": 10,
    "__init__": 11,   # the package root: re-exports the API (autoscale_ray.search), imported lazily
}
BASE = {"errors", "names", "checks", "formatting", "atomic", "storage", "interrupt", "chaos"}
TABLES = {"runs", "mixture"}


def part(module: str) -> str:
    """The part of `autoscale_ray.<...>` (searchers/ installs as autoscale_ray.searchers)."""
    head = module.split(".")[1] if module.count(".") else "__init__"
    if head in BASE:
        return "base"
    if head in TABLES:
        return "tables"
    return head


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "autoscale_ray").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        found[".".join(rel.parts).removesuffix(".__init__")] = path
    for path in sorted((ROOT / "searchers").rglob("*.py")):
        rel = path.relative_to(ROOT / "searchers").with_suffix("")
        found[".".join(("autoscale_ray", "searchers", *rel.parts)).removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from autoscale_ray import x` imports the module autoscale_ray.x
            if node.module in ("autoscale_ray", "autoscale_ray.tuning"):
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def library_imports() -> list[tuple[str, Path, int, str]]:
    return [(name, path, line, target) for name, path in modules().items()
            for line, target in imports(path)]


def test_every_part_has_a_layer() -> None:
    parts = {part(name) for name in modules()}
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"


def test_imports_point_down() -> None:
    upward = []
    for name, path, line, target in library_imports():
        if not target.startswith("autoscale_ray.") or target == "autoscale_ray":
            continue
        mine, theirs = part(name), part(target)
        if mine != theirs and LAYERS[theirs] >= LAYERS[mine]:
            upward.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_laws_are_pure_math() -> None:
    bad = []
    for name, path, line, target in library_imports():
        if part(name) != "laws":
            continue
        top = target.split(".")[0]
        library = target.startswith("autoscale_ray")
        if top in ("ray", "torch", "pandas", "pyarrow", "transformers") or (
                library and not (target.startswith("autoscale_ray.laws") or target == "autoscale_ray.errors")):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_only_the_command_line_imports_the_verbs() -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for name, path, line, target in library_imports()
           if target.startswith("autoscale_ray.verbs") and part(name) not in ("verbs", "cli")]
    assert not bad, "\n".join(bad)


def test_only_the_pipeline_imports_the_searchers() -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for name, path, line, target in library_imports()
           if target.startswith("autoscale_ray.searchers")
           and part(name) not in ("searchers", "pipeline", "comparison", "verbs", "cli")]
    assert not bad, "\n".join(bad)
    plain = [f"{path.relative_to(ROOT)}:{line}" for _, path, line, target in library_imports()
             if target.split(".")[0] == "searchers"]
    assert not plain, f"import autoscale_ray.searchers, not the folder name: {plain}"


def test_no_import_cycle_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for name, _, _, target in library_imports():
        if target.startswith("autoscale_ray.") and part(name) != part(target):
            graph.setdefault(part(name), set()).add(part(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in graph if reaches(p, p, {p}))
    assert not cycles, f"parts in an import cycle: {cycles} ({graph})"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a law importing the runs table is reported."""
    law = tmp_path / "bad.py"
    law.write_text("def f():\n    from autoscale_ray.runs import read_runs\n")
    (_, target), = imports(law)
    assert LAYERS[part(target)] > LAYERS[part("autoscale_ray.laws.bad")]


def test_pyproject_lists_every_package() -> None:
    """Packages are listed by name (searchers/ is mapped): a new folder must be added there."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert set(tool["packages"]) == folders
    assert tool["package-dir"] == {"autoscale_ray.searchers": "searchers"}


@pytest.mark.parametrize("site", [False, True])
def test_a_checkout_imports_its_own_searchers(tmp_path: Path, site: bool) -> None:
    """From a checkout on the path (`ray job submit --working-dir .`), with no install at all
    (`-S`: no site-packages) or with one, autoscale_ray.searchers is the searchers/ beside it."""
    flags = [] if site else ["-S"]
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import autoscale_ray.searchers as s; "
            "print(s.__path__[0])")
    out = subprocess.run([sys.executable, *flags, "-c", code, str(ROOT)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == ROOT / "searchers"


def test_the_config_checks_and_the_trial_module_do_not_import_torch(tmp_path) -> None:
    """A config's checks (its model preset's name included), and a Tune trial actor unpickling its
    trainable, need no torch or transformers (3 s to import: a bad config's error took 5.6 s with
    them, 1.9 s without; a good config's checks 4 s before the driver started Ray)."""
    from helpers import experiment_config, write_config

    cfg = write_config(tmp_path / "c.yaml", experiment_config("c", tmp_path / "cache", train={"model": "llama-tiny"}))
    code = ("import sys, autoscale_ray.config, autoscale_ray.tuning.trial, autoscale_ray.train; "
            "from autoscale_ray.train import TrainConfig, PRESETS; "
            f"cfg = autoscale_ray.config.load_config({str(cfg)!r}); "
            "from autoscale_ray.tuning.contract import build_contract; "
            "print(cfg.train['model'], sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "llama-tiny []"
    code = "from autoscale_ray.train import PRESETS, model_spec; print(len(PRESETS) > 0, callable(model_spec))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True True"  # the lazy names still resolve


def test_a_command_registers_only_its_own_verb() -> None:
    """Each verb's module imports its fits (pandas, scipy: about 1 s); a command parses with its
    own verb only, --help and a mistyped verb with all of them."""
    from autoscale_ray.cli import VERBS, build_parser

    def verbs(argv: list[str]) -> list[str]:
        sub = next(a for a in build_parser(argv)._actions if a.dest == "verb")
        return list(sub.choices)

    assert verbs(["ddo", "runs.csv", "--json"]) == ["ddo"]
    assert verbs(["--help"]) == verbs(["-h", "ddo"]) == verbs([]) == verbs(["bogus"]) == list(VERBS)
    code = ("import sys; from autoscale_ray.cli import main; code = main(['run', 'missing.yaml', '--out', 'x']); "
            "print(code, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["2", "False"] and "missing.yaml" in out.stderr
