"""The layers of vlmcli (pyproject.toml, [tool.importlinter]): imports point down, no cycles between siblings,
and only cli/train.py imports finetune. Checked with import-linter on the installed layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _installed_layout(tmp_path: Path, replaced: dict[str, str] | None = None) -> Path:
    """vlmcli/ as a wheel installs it (the repository's finetune/ at vlmcli/finetune), made of links to the
    checkout; import-linter reads a package from the file system, where the checkout keeps finetune/ apart.
    `replaced` maps a module's file name in vlmcli/ to other source (a deliberately broken layer)."""
    package = tmp_path / "vlmcli"
    package.mkdir()
    for child in (ROOT / "vlmcli").iterdir():
        if child.name in (replaced or {}):
            (package / child.name).write_text(replaced[child.name])
        elif child.name != "__pycache__":
            (package / child.name).symlink_to(child)
    (package / "finetune").symlink_to(ROOT / "finetune")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint_imports), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tree,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)


def test_the_import_contracts_hold(tmp_path):
    result = _lint(_installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_them(tmp_path):
    text = (ROOT / "vlmcli" / "prompts.py").read_text() + "\nfrom vlmcli.jobs import ocr  # noqa\n"
    result = _lint(_installed_layout(tmp_path, {"prompts.py": text}))
    assert result.returncode != 0 and "Layers point down BROKEN" in result.stdout


def test_every_package_is_in_the_wheel():
    """setuptools lists packages by hand (no folder named `finetune` may reach site-packages): a package missing
    from the list imports from a clone and fails after `pip install`."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(root).parts) for init in (root / "vlmcli").rglob("__init__.py")}
    found |= {".".join(("vlmcli", *init.parent.relative_to(root).parts)) for init in (root / "finetune").rglob("__init__.py")}
    assert found == listed
