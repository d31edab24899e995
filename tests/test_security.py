"""Security properties of the code base, checked on its syntax trees (the run-time check that no
credential reaches outputs or logs is tests/test_cluster_faults.py::test_no_credentials_...):

* YAML is read with `safe_load` or the config's duplicate-refusing subclass of `yaml.SafeLoader`;
  no `eval`/`exec`, no `os.system`, no `shell=True`;
* nothing unpickles user files: `pickle.loads` only reads Tune's searcher checkpoint after checking
  the signature of this process (searchers/persist.py; `run --resume` reads none: see
  tests/test_safety.py), `torch.load` only with `weights_only=True`;
* no credential-looking value in the shipped configs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("autoscale_ray", "searchers", "benchmarks") for p in (ROOT / d).rglob("*.py"))
CONFIGS = sorted([*(ROOT / "experiments").glob("*.yaml"), *(ROOT / "cluster").glob("*.yaml")])
PICKLE_ALLOWED = {"searchers/persist.py"}  # Tune's searcher checkpoint, signed by this process


def calls(path: Path) -> list[tuple[str, ast.Call]]:
    """(dotted name, call node) of every call in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            out.append((ast.unparse(node.func), node))
    return out


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_the_scan_sees_the_code_base() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert {"autoscale_ray/config.py", "autoscale_ray/train/state.py", "searchers/persist.py"} <= names
    found = {name for p in SOURCES for name, _ in calls(p)}
    assert {"torch.load", "pickle.loads"} <= found  # the patterns below can match


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_unsafe_calls(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    for name, call in calls(path):
        where = f"{rel}:{call.lineno}"
        assert name not in ("eval", "exec", "os.system", "os.popen"), where
        assert not name.startswith("yaml.") or name in ("yaml.safe_load", "yaml.safe_dump"), where
        shell = keyword(call, "shell")
        assert not (isinstance(shell, ast.Constant) and shell.value), f"shell=True at {where}"
        if name in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads"):
            assert rel in PICKLE_ALLOWED, f"unpickling at {where}"
        if name == "torch.load":
            flag = keyword(call, "weights_only")
            assert isinstance(flag, ast.Constant) and flag.value is True, f"torch.load without weights_only at {where}"


SECRET_PATTERNS = [re.compile(p, re.I) for p in (
    r"AKIA[0-9A-Z]{16}",                                  # AWS access key id
    r"aws_secret_access_key\s*[:=]\s*\S+",
    r"(secret|password|token|api_key)\s*:\s*['\"]?[A-Za-z0-9/+_\-]{12,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
)]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_configs_hold_no_credentials(path: Path) -> None:
    text = path.read_text()
    assert not [p.pattern for p in SECRET_PATTERNS if p.search(text)]


def test_secret_patterns_catch_credentials() -> None:
    leaked = "provider: {aws_secret_access_key: wJalrXUtnFEMI/K7MDENG}\nkey: AKIAIOSFODNN7EXAMPLE\n"
    assert sum(bool(p.search(leaked)) for p in SECRET_PATTERNS) == 2


def test_the_config_loader_is_a_safe_loader() -> None:
    import yaml

    from autoscale_ray.config import _StrictLoader

    assert issubclass(_StrictLoader, yaml.SafeLoader) and not issubclass(_StrictLoader, yaml.FullLoader)
    with pytest.raises(yaml.constructor.ConstructorError):  # no Python objects from a config
        loader = _StrictLoader("!!python/object/apply:os.system ['true']")
        try:
            loader.get_single_data()
        finally:
            loader.dispose()
