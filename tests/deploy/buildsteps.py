"""Helpers shared by the image and packaging tests: Dockerfile parsing, build context, venvs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def instructions(dockerfile: Path = PROJECT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


def _pattern(glob: str) -> re.Pattern[str]:
    regex, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif glob[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif glob[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(glob[i]), i + 1
    return re.compile(f"^{regex}$")


def dockerignore(path: Path = PROJECT / ".dockerignore") -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) in file order: Docker's rule is that the last match wins."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.lstrip("!").strip("/"))))
    return rules


def ignored(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves ``relpath`` out of the build context (a match on a parent counts)."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            result = not negated
    return result


def build_context(dest: Path) -> list[str]:
    """Copy what ``docker build`` would send (per .dockerignore) to ``dest``; the relative paths."""
    rules = dockerignore()
    copied = []
    for root, dirs, files in os.walk(PROJECT):
        rel_root = Path(root).relative_to(PROJECT)
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            rel = (rel_root / name).as_posix()
            if not ignored(rel, rules):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / name, dest / rel)
                copied.append(rel)
    return copied


def make_venv(path: Path) -> Path:
    """A fresh virtual environment that sees the running environment's packages (the
    dependencies), and its python. The package itself must come from the wheel installed into it,
    with ``pip --python <venv python>`` (no pip inside the venv: ensurepip would double its cost).

    ``system_site_packages`` would expose the *base* interpreter's packages, not those of a venv
    the tests run in; a ``.pth`` line per site directory exposes the running ones, after the new
    venv's own, and without running their ``.pth`` files (an editable install stays invisible).
    """
    venv.EnvBuilder(symlinks=True).create(path)
    python = path / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(own) / "_running_env.pth").write_text("\n".join(parents) + "\n")
    return python


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> str:
    result = subprocess.run(
        command,
        check=False,
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def ci_sample(data_dir: Path) -> None:
    """The bundled raw inputs, where a mounted data volume would put them."""
    src = PROJECT / "data" / "01_raw"
    if not list((src / "dqmio").glob("*_ci.root")):
        import pytest

        pytest.skip("bundled CI sample not generated")
    shutil.copytree(src, data_dir / "01_raw")
