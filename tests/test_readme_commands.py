"""Every `autoscale-ray` command in the README's ```bash blocks runs as written from a fresh clone:
in a folder holding only a copy of examples/, each exits 0, in the README's order (a later command
may read what an earlier one wrote, `> mix_1.2b.json`).

The rule for what is not run: commands of the verbs that train or need a finished search's folder
(`run`, `report`, `compare`) and the `make` targets (`make demo` trains). Synopses (the ``` blocks
without `bash`, with placeholders like RUNS) are not commands."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from autoscale_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = {"run", "report", "compare"}  # they train, or need a search's output folder
OFFLINE = {"ddo", "project", "lr", "law", "regress", "mixlaw"}


def readme_commands() -> list[str]:
    """The `autoscale-ray ...` lines of the README's bash blocks, comments stripped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("autoscale-ray "):
                lines.append(line)
    return lines


def test_the_readme_has_a_command_of_every_offline_verb() -> None:
    verbs = {shlex.split(c)[1] for c in readme_commands()}
    assert OFFLINE <= verbs, verbs
    assert verbs - OFFLINE <= NOT_RUN, verbs - OFFLINE


def test_every_readme_command_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for command in readme_commands():
        words = shlex.split(command)
        if words[1] in NOT_RUN:
            continue
        out_file = None
        if ">" in words:  # the shell's redirection, as the README writes it
            at = words.index(">")
            words, out_file = words[:at], words[at + 1]
        code = main(words[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{command}: {err}"
        assert "WARNING" not in err, f"{command}: {err}"
        if out_file:
            (tmp_path / out_file).write_text(out)
        ran += 1
    assert ran >= len(OFFLINE)
