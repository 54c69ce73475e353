"""What Airflow's plugin loader imports from plugins/, and the line between the production
package ``passerelle`` and the demo helpers ``passerelle_demo``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"


#: The one Airflow plugin entry point (the Passerelle view); nothing else in plugins/ is for the loader.
ENTRY_POINT = PLUGINS / "passerelle_plugin.py"

#: What importing the entry point may load from plugins/: the desk's app module and its packages,
#: nothing heavier (the loader runs in every Airflow component, workers included).
PLUGIN_IMPORTS = {
    str(ENTRY_POINT),
    str(PLUGINS / "passerelle" / "__init__.py"),
    str(PLUGINS / "passerelle" / "desk" / "__init__.py"),
    str(PLUGINS / "passerelle" / "desk" / "app.py"),
}


def entry_points() -> set[str]:
    """The files meant for the plugin loader: the .py files directly in plugins/."""
    return {str(p) for p in PLUGINS.glob("*.py")}


def test_the_one_entry_point_is_the_passerelle_plugin():
    assert entry_points() == {str(ENTRY_POINT)}


def test_plugin_loader_finds_only_the_entry_points():
    from airflow.configuration import conf
    from airflow.utils.file import find_path_from_directory

    syntax = conf.get("core", "dag_ignore_file_syntax", fallback="glob")
    assert syntax == "glob", "plugins/.airflowignore is written in glob syntax"
    found = {p for p in find_path_from_directory(str(PLUGINS), ".airflowignore", syntax) if p.endswith(".py")}
    assert found == entry_points()
    # Not vacuous: without the ignore file the loader would walk both packages.
    everything = {str(p) for p in PLUGINS.rglob("*.py")}
    assert any("/passerelle/" in p for p in everything) and any("/passerelle_demo/" in p for p in everything)


def test_airflow_plugin_loader_imports_only_the_passerelle_plugin():
    """Airflow's own loader, in a fresh interpreter: no import error, one plugin named ``passerelle``,
    and from plugins/ only the entry point and the light modules it needs (no pandas, no database
    driver, no Airflow API internals at load: they come when a page is served)."""
    code = f"""
import json, sys
from airflow.configuration import conf
from airflow.plugins_manager import _load_plugins_from_plugin_directory
plugins, errors = _load_plugins_from_plugin_directory(
    plugins_folder={str(PLUGINS)!r}, ignore_file_syntax=conf.get("core", "dag_ignore_file_syntax"))
loaded = sorted(getattr(m, "__file__", None) or "" for m in list(sys.modules.values()))
heavy = sorted(m for m in ("pandas", "psycopg", "airflow.api_fastapi.core_api.security") if m in sys.modules)
print(json.dumps({{"plugins": [p.name for p in plugins], "errors": errors, "heavy": heavy,
                  "from_plugins": [f for f in loaded if f.startswith({str(PLUGINS)!r})]}}))
"""
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["plugins"] == ["passerelle"]
    assert set(result["from_plugins"]) == PLUGIN_IMPORTS
    assert result["heavy"] == []


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_production_code_never_imports_the_demo_package():
    files = sorted((PLUGINS / "passerelle").rglob("*.py")) + sorted((ROOT / "dags").glob("*.py")) + [ENTRY_POINT]
    assert len(files) > 10
    offenders = {
        str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f) if m.split(".")[0] == "passerelle_demo")
        for f in files
    }
    assert {f: m for f, m in offenders.items() if m} == {}
    # Nor by name in a string (importlib.import_module, subprocess "-m" ...).
    mentions = [str(f.relative_to(ROOT)) for f in files if "passerelle_demo" in f.read_text(encoding="utf-8")]
    assert mentions == []


def test_the_ast_check_sees_a_demo_import(tmp_path):
    """The check above can fail: both import forms are seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("import passerelle_demo.seed\nfrom passerelle_demo.localenv import start_ftp\n")
    assert imported_modules(probe) == {"passerelle_demo.seed", "passerelle_demo.localenv"}


# ------------------------------------------------------------------ the Docker image's libraries

#: What the image runs: the production package, the plugin and the DAGs, and the compose file's
#: helper services (the back office's seeding, the FTPS certificate).
IMAGE_CODE = [
    *sorted((PLUGINS / "passerelle").rglob("*.py")),
    ENTRY_POINT,
    *sorted((ROOT / "dags").glob("*.py")),
    ROOT / "docker" / "erp_seed.py",
    ROOT / "docker" / "ftps_cert.py",
    PLUGINS / "passerelle_demo" / "seed.py",
]

#: Libraries whose wheel loads a native library the official image does not have: the wheel
#: that brings it must be installed too.
NATIVE = {"pyvips": "pyvips-binary"}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dockerfile_libraries() -> set[str]:
    """The distributions the Dockerfile adds to the official image: the lines of requirements.txt
    its ``grep -iE '...'`` keeps (the one list of versions)."""
    import re

    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pattern = re.search(r"grep -iE '([^']+)'", text)
    assert pattern, "Dockerfile: no grep -iE '...' choosing the runtime libraries from requirements.txt"
    keep = re.compile(pattern.group(1), re.IGNORECASE)
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {_canonical(line.split("==")[0]) for line in lines if keep.search(line)}


def installed_closure(roots: set[str]) -> set[str]:
    """``roots`` and everything they require, as installed here (extras left out): what pip
    installs with them, at the least."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    return seen


def missing_from_image(files: list[Path], image: set[str]) -> dict[str, str]:
    """The third-party modules ``files`` import that no distribution of ``image`` provides (module:
    what provides it here), and the native wheels (:data:`NATIVE`) not beside their library."""
    from importlib.metadata import packages_distributions

    modules = {m.split(".")[0] for f in files for m in imported_modules(f)}
    modules -= set(sys.stdlib_module_names) | {"__future__", "passerelle", "passerelle_demo"}
    providers = packages_distributions()
    missing = {}
    for module in sorted(modules):
        dists = {_canonical(d) for d in providers.get(module, [])}
        if not dists & image:
            missing[module] = ", ".join(sorted(dists)) or "not installed here"
        for dist in dists & NATIVE.keys():
            if NATIVE[dist] not in image:
                missing[module] = f"{dist} without {NATIVE[dist]}"
    return missing


def test_the_image_installs_every_library_the_code_it_runs_imports():
    """Each third-party import of the code the image runs comes from Airflow (what it requires)
    or from a library the Dockerfile installs: a library added to requirements.txt for the code
    but not to the Dockerfile's list fails here, not at the first photo in production."""
    added = dockerfile_libraries()
    assert {"pandas", "psycopg", "pillow", "pyvips", "pyvips-binary"} <= added
    image = installed_closure({"apache-airflow"} | added)
    assert {"apache-airflow-core", "sqlalchemy", "pandas", "numpy"} <= image  # the closure is read
    assert missing_from_image(IMAGE_CODE, image) == {}


def test_the_image_check_sees_a_library_missing():
    """The check above can fail: without the Dockerfile's libraries, Airflow alone lacks pandas
    and pyvips; with pyvips but not its native wheel, that is said too."""
    airflow_only = installed_closure({"apache-airflow"})
    missing = missing_from_image(IMAGE_CODE, airflow_only)
    assert {"pandas", "pyvips", "nh3"} <= missing.keys()
    without_native = installed_closure({"apache-airflow"} | dockerfile_libraries()) - {"pyvips-binary"}
    assert missing_from_image(IMAGE_CODE, without_native) == {"pyvips": "pyvips without pyvips-binary"}
