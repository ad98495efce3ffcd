"""What ``pip install .`` ships: every package (found, not listed), the web app's templates and
static files, the migrations' template; and setuptools has nothing to warn about.

Runs setuptools' ``build_py`` (the step of building a wheel that picks packages and their data)
on a copy of the project, with the installed setuptools, so no build dependency is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["workflows", "activities", "store", "conveyor", "worker.py", "starter.py"]


def test_the_build_ships_every_package_and_its_data_without_warnings(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in [*SHIPPED, "pyproject.toml", "README.md"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    out = tmp_path / "lib"
    done = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "build_py", "-d", str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for warning in ("would be ignored", "absent from the `packages`", "as data is deprecated"):
        assert warning not in output, output

    expected = {
        path.relative_to(ROOT).as_posix()
        for name in SHIPPED
        for path in ([ROOT / name] if name.endswith(".py") else (ROOT / name).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    built = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert expected - built == set(), "not shipped"
    assert built - expected == set(), "shipped but not in the source tree"
    for needed in (
        "conveyor/api/routes/queue.py",
        "conveyor/web/templates/base.html",
        "conveyor/web/static/app.css",
        "conveyor/web/static/app.js",
        "store/migrations/script.py.mako",
    ):
        assert needed in built, needed
