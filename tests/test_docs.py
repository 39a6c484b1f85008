"""The documentation: the MkDocs site builds with --strict (a broken link or anchor fails), the README's links
into docs/ resolve, and every measured table in the README and docs/ equals what benchmarks/docs_tables.py
renders from its committed benchmark output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from benchmarks import docs_tables

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)


def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
    for page in ("speed", "reliability", "learn_to_read", "development"):
        assert (site / page / "index.html").is_file()


@pytest.mark.parametrize("page", docs_tables.pages(), ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_table_equals_what_its_file_gives(page):
    text = page.read_text()
    assert docs_tables.render(text) == text, "run `python -m benchmarks.docs_tables` and commit the pages"


def test_every_table_is_on_a_page():
    used = {name for page in docs_tables.pages() for name in docs_tables.regions(page.read_text())}
    assert used == set(docs_tables.TABLES)


def test_a_changed_output_file_makes_its_table_stale(tmp_path, monkeypatch):
    """The check reads the file itself: change one figure in a copy, and the committed page no longer matches."""
    page = (ROOT / "docs" / "batches.md").read_text()
    copy = tmp_path / "benchmarks" / "ray-last-run.txt"
    copy.parent.mkdir()
    original = docs_tables.RAY.read_text()
    assert "168.3" in original
    copy.write_text(original.replace("168.3", "999.9"))
    monkeypatch.setattr(docs_tables, "RAY", copy)
    rendered = docs_tables.render(page)
    assert rendered != page and "999.9" in rendered and "168.3" not in rendered.split("<!-- begin: ray-overhead")[1]


def test_render_fills_a_region_and_refuses_unknown_or_unclosed_ones():
    stale = "intro\n<!-- begin: ray-overhead -->\nold table\n<!-- end: ray-overhead -->\nafter\n"
    rendered = docs_tables.render(stale)
    assert rendered.startswith("intro\n<!-- begin: ray-overhead -->\n| run |") and rendered.endswith(
        "\n<!-- end: ray-overhead -->\nafter\n")
    assert "old table" not in rendered and docs_tables.render(rendered) == rendered
    with pytest.raises(KeyError, match="no table named"):
        docs_tables.render("<!-- begin: nonesuch -->\n<!-- end: nonesuch -->\n")
    with pytest.raises(KeyError, match="closed"):
        docs_tables.render("<!-- begin: ray-overhead -->\nno end\n")


def test_the_check_command_passes_on_the_committed_pages(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.docs_tables", "--check"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_readme_links_resolve_on_github():
    """Relative file links (they work on GitHub and in a checkout), each to a file, and to a heading it has."""
    for target in _LINK.findall(README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert path and not path.startswith("/"), target
        file = ROOT / path
        assert file.is_file(), target
        if anchor:
            headings = {slugify(heading, "-") for heading in _HEADING.findall(file.read_text())}
            assert anchor in headings, target


def test_readme_is_short_and_keeps_the_exit_codes():
    text = README.read_text()
    assert len(text.splitlines()) <= 260
    for code in (0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 130, 143):
        assert re.search(rf"^\| {code} \| ", text, re.M), code
    assert "bash examples/run.sh" in text and "bash scripts/test.sh" in text
