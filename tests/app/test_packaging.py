"""A built wheel, installed into a fresh virtual environment, works without the checkout.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder),
installed with --no-deps into a new venv that sees the dev venv's third-party packages
through a `.pth` file pointing at a filtered copy of its site-packages: everything except
this project's own editable install and what only the benchmarks need (pandas, psutil). So
`import pipeline` can only resolve into the fresh venv, and a run-time import of pandas fails
there just as in a real `pip install .` without extras. Commands run from an unrelated directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# bench/ is copied too, as it sits beside the package in a checkout `pip install .` reads.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "pipeline", "assets", "sql", "bench")
# Left out of the fresh venv's view of the dev packages: this project (its editable finder
# must not answer `import pipeline`) and the benchmarks' own needs, which run time must not
# need.
HIDDEN = ("vast_pipeline", "__editable__", "pandas", "psutil")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Built:
    """The wheel of this checkout and what its build printed (stdout and stderr)."""

    wheel: Path
    output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build_wheel(tmp_path_factory.mktemp("packaging"))


@pytest.fixture(scope="module")
def venv(built: Built) -> Path:
    """A fresh venv with the wheel of this checkout installed (no dependencies)."""
    root, wheel = built.wheel.parents[1], built.wheel
    deps = _dev_packages_view(root / "deps")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = _run(venv, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout
    Path(purelib.strip(), "dev_dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    _run(venv, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel))
    return venv


def _build_wheel(root: Path) -> Built:
    src, dist = root / "src", root / "dist"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
                           capture_output=True, text=True, cwd=root)
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = dist.glob("vast_pipeline-*.whl")
    return Built(wheel, build.stdout + build.stderr)


def _dev_packages_view(deps: Path) -> Path:
    """Symlinks to the dev venv's installed packages, minus HIDDEN (and its .pth files,
    which Python would not process in an added path anyway)."""
    deps.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if entry.name.lower().startswith(HIDDEN) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DAGSTER_HOME", "PYTHONHOME")}
    env["VAST_PIPELINE_HOME"] = str(home)
    return env


def _run(venv: Path, *args: str, cwd: Path | None = None, env: dict | None = None,
         program: str = "python", check: bool = True) -> subprocess.CompletedProcess[str]:
    # Never the checkout as working directory: `python -c` would import from there.
    result = subprocess.run([str(venv / "bin" / program), *args], cwd=cwd or venv, env=env,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_wheel_resolves_into_the_fresh_venv(venv: Path) -> None:
    probe = ("import json, pipeline, assets.definitions\n"
             "from pipeline.core.resources import sql_dir\n"
             "from pipeline.reports.render import TEMPLATES\n"
             "print(json.dumps([pipeline.__file__, assets.definitions.__file__, "
             "str(sql_dir()), sorted(p.name for p in sql_dir().glob('*.sql')), "
             "sorted(p.name for p in TEMPLATES.glob('*.j2'))]))")
    pipeline_file, definitions, sql, models, templates = json.loads(_run(venv, "-c", probe).stdout)
    site = str(venv / "lib")
    assert pipeline_file.startswith(site) and definitions.startswith(site)
    assert sql.startswith(site) and not sql.startswith(str(REPO))
    assert models == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert templates == ["report.html.j2", "report.md.j2"]


def test_the_wheel_builds_without_warnings_and_carries_the_data_files(built: Built) -> None:
    """setuptools warned (about 40 lines, at every first install) when a data folder such
    as the report templates was importable but not declared as a package."""
    assert "Warning" not in built.output, built.output
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    assert {f"pipeline/sql/{p.name}" for p in (REPO / "sql").glob("*.sql")} <= names
    assert {f"pipeline/reports/templates/{p.name}"
            for p in (REPO / "pipeline" / "reports" / "templates").iterdir()} <= names
    assert "assets/definitions.py" in names


def test_the_wheel_holds_no_benchmark(built: Built) -> None:
    """The benchmarks are tools of the checkout (`python -m bench`), not product: no module
    of theirs ships, and the wheel declares no `bench` extra."""
    assert (REPO / "bench" / "__main__.py").is_file()  # what must stay out exists
    with zipfile.ZipFile(built.wheel) as wheel:
        names = wheel.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        extras = [line for line in wheel.read(metadata).decode().splitlines()
                  if line.startswith("Provides-Extra:")]
    assert any(n.startswith("pipeline/") for n in names)
    assert not [n for n in names if n.startswith("bench/") or "/bench" in n], names
    assert extras and "Provides-Extra: bench" not in extras, extras


def test_declared_dependencies_are_installed_and_exclude_the_benchmarks_needs(venv: Path) -> None:
    # pip check over everything visible: only lines about this project matter here (dev
    # tools such as vastai legitimately miss the hidden psutil).
    report = _run(venv, "-m", "pip", "check", check=False).stdout
    assert report.strip(), "pip check printed nothing"
    assert not [line for line in report.splitlines() if line.startswith("vast-pipeline ")]
    requires = _run(venv, "-c", "from importlib.metadata import requires; "
                                "print('\\n'.join(requires('vast-pipeline')))").stdout.splitlines()
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("dagster") for r in runtime)
    assert not [r for r in runtime if r.startswith(("pandas", "psutil"))]
    hidden = _run(venv, "-c", "import pandas", check=False).stderr
    assert "No module named 'pandas'" in hidden


def test_demo_sql_report_and_dagster_from_an_unrelated_directory(
        venv: Path, tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(home)
    demo = _run(venv, "demo", "--days", "2", "--size", "8", cwd=elsewhere, env=env,
                program="vast-pipeline").stdout
    assert "No SQL models" not in demo
    assert "dev -m assets.definitions" in demo and "workspace.yaml" not in demo
    assert (home / "warehouse.duckdb").is_file()
    html = [Path(line.strip()) for line in demo.splitlines() if line.strip().endswith(".html")]
    assert len(html) == 2 and all(p.is_file() and p.is_relative_to(home) for p in html)

    rows = _run(venv, "sql", "select count(*) as n, count(distinct day) as days "
                             "from estimated_cost_daily", "--format", "json",
                cwd=elsewhere, env=env, program="vast-pipeline").stdout
    [row] = json.loads(rows)
    assert row["n"] > 0 and 2 <= row["days"] <= 3

    report = _run(venv, "report", "cost", "--format", "md", cwd=elsewhere, env=env,
                  program="vast-pipeline").stdout
    [path] = [Path(line) for line in report.splitlines() if line.endswith(".md")]
    assert path.is_file() and path.is_relative_to(home / "reports")
    assert "Cost" in path.read_text(encoding="utf-8")
    assert not list(elsewhere.iterdir())  # nothing written to the working directory

    validate = _run(venv, "-m", "dagster", "definitions", "validate", "-m",
                    "assets.definitions", cwd=elsewhere, check=False,
                    env={**env, "DAGSTER_HOME": str(home / "dagster")})
    output = validate.stdout + validate.stderr
    assert validate.returncode == 0 and "Validation successful" in output, output


def test_there_is_no_bench_command(venv: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(venv / "bin" / "vast-pipeline"), "bench", "history"],
                            cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "invalid choice: 'bench'" in result.stderr


def _top_level_imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """A package the code imports directly must be declared, not arrive by chance with
    another one (numpy came only with matplotlib until the replay imported it)."""
    import re
    from importlib.metadata import packages_distributions, requires

    allowed = set()
    for requirement in requires("vast-pipeline") or []:
        name, _, marker = requirement.partition(";")
        extra = re.search(r'extra == "(\w+)"', marker)
        if extra is None or extra.group(1) == "s3":  # run time and its extra
            allowed.add(re.split(r"[<>=!~\[ ]", name.strip(), maxsplit=1)[0].lower())
    owners = packages_distributions()
    undeclared = {}
    for path in sorted([*(REPO / "pipeline").rglob("*.py"), *(REPO / "assets").rglob("*.py")]):
        for module in _top_level_imports(path) - set(sys.stdlib_module_names) - {
                "pipeline", "assets", "__future__"}:
            dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
            if not dists & allowed:
                undeclared[f"{path.relative_to(REPO)}: {module}"] = sorted(dists)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_readmes_extras_install_line_resolves_with_the_constraints(built: Built) -> None:
    """The README's line for the `s3` extra uses constraints.txt (plain pip may not
    resolve boto3 with s3fs's aiobotocore), and that line resolves: run offline as a dry
    run in the dev venv, whose packages are the constraints' versions, it finds every pin
    consistent with the extra's requirements and nothing else to fetch."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"^.*pip install .*\[s3\].*$", readme, flags=re.M)
    assert lines and all("-c constraints.txt '.[s3]'" in line for line in lines), lines
    command = shlex.split(re.search(r"pip install (-c constraints.txt '\.\[s3\]')",
                                    lines[0]).group(1))
    command[command.index("constraints.txt")] = str(REPO / "constraints.txt")
    report = built.wheel.parents[1] / "resolution.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
         "--no-build-isolation", "--report", str(report), *command],
        cwd=built.wheel.parents[1] / "src", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    installs = json.loads(report.read_text())["install"]
    assert [(i["metadata"]["name"], i["requested_extras"]) for i in installs] == [
        ("vast-pipeline", ["s3"])]
