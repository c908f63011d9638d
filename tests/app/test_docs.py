"""The docs site: the table reference is the one the SQL and a real warehouse give, the site
builds with `mkdocs build --strict` (offline, every page in the nav, no broken link), and the
README stays a few screens long with one link per docs page."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tables", DOCS / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
         "--config-file", str(project / "mkdocs.yml")],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)})


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    shutil.copy(REPO / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(DOCS, project / "docs")
    return project


def test_the_table_reference_page_is_what_the_sql_and_a_built_warehouse_give(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    page = _generator().render(home)
    assert "## spend_daily\n" in page and "| `total_cost` | `DOUBLE` |" in page
    assert (DOCS / "tables.md").read_text(encoding="utf-8") == page, (
        "docs/tables.md is stale: run `make docs-tables` and commit it")


def test_every_model_has_its_section_with_its_columns(tmp_path: Path) -> None:
    from pipeline.warehouse.models import discover_models

    text = (DOCS / "tables.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    models = {m.name: m for m in discover_models()}
    assert set(sections) == set(models)
    for name, model in models.items():
        assert model.header.splitlines()[0] in sections[name], name
        assert re.search(r"^\| `\w+` \| `[^`]+` \|$", sections[name], flags=re.M), name


def test_the_site_builds_strict_offline_with_every_page_in_the_nav(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config.get("plugins", [])]
    assert not {"social", "privacy"} & {p.split("/")[-1] for p in plugins}, plugins
    assert config["theme"].get("font") is False  # no web fonts fetched by readers either
    site = tmp_path / "site"
    result = _mkdocs_build(REPO, site)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in DOCS.glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), page.name
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        remote = re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["']https?://[^"']+""",
                            text)
        assert not remote, (html, remote)
    assert (site / "data-flow.svg").is_file()


def test_the_strict_build_fails_on_a_broken_link_and_on_a_page_left_out_of_the_nav(
        tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "link")
    page = project / "docs" / "semantics.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n[gone](no-such-page.md)\n",
                    encoding="utf-8")
    result = _mkdocs_build(project, tmp_path / "link" / "site")
    assert result.returncode != 0 and "no-such-page.md" in result.stdout + result.stderr

    project = _copy_project(tmp_path / "nav")
    (project / "docs" / "orphan.md").write_text("# Not in the nav\n", encoding="utf-8")
    result = _mkdocs_build(project, tmp_path / "nav" / "site")
    assert result.returncode != 0 and "orphan.md" in result.stdout + result.stderr


def test_the_readme_fits_on_a_few_screens_and_links_each_docs_page_once() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]*)?\)", readme)
    listed = re.findall(r"^- \[[^\]]+\]\((docs/[\w.-]+\.md)\)", readme, flags=re.M)
    pages = sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))
    assert sorted(listed) == pages  # the Documentation list: one link per page
    assert all((REPO / link).is_file() for link in links), links
    for picture in ("docs/cost_report.png", "docs/reliability_report.png"):
        assert f"]({picture})" in readme and (REPO / picture).is_file()
