"""The layout's rules, checked on the source (docs/architecture.md): dependencies point one way,
functions stay short, one owner per path, and the generated params schema is current."""

import ast
import json
import re

import pytest
import yaml

from pipeline import layout
from pipeline.tools import makefile
from tests.helpers import REPO

PACKAGE = REPO / "pipeline"
BENCHMARKS = REPO / "benchmarks"
SHARED = {
    "config",
    "errors",
    "atomic",
    "faults",
    "plots",
    "layout",
    "specs",
    "startup",
    "images",
    "secrets",
    "inference",
    "text",
}
ENTRY = {"cli", "__main__"}  # `python -m pipeline`
# layer → the layers it must never import (a layer may import any layer below it, not a sibling);
# `api` is the Python API's facade (pipeline/api.py), above everything but the CLI; benchmarks/ sits
# outside the package, above it: it may import the pipeline, never the reverse
ORDER = [
    "shared",
    "data",
    "objectives",
    "models",
    "training",
    "monitoring",
    "workflows",
    "serving",
    "lecture",
    "tools",
    "api",
    "cli",
    "benchmarks",
]
TOP = {"serving", "lecture", "tools", "api", "cli"}
FORBIDDEN = {
    "shared": {"data", "objectives", "models", "training", "monitoring", "workflows"} | TOP,
    "data": {"objectives", "models", "training", "monitoring", "workflows"} | TOP,
    "objectives": {"models", "training", "monitoring", "workflows"} | TOP,
    "models": {"objectives", "training", "monitoring", "workflows"} | TOP,
    "training": {"monitoring", "workflows"} | TOP,
    "monitoring": {"workflows"} | TOP,
    "workflows": TOP,
    "serving": {"workflows", "lecture", "tools", "api", "cli"},
    "lecture": {"monitoring", "workflows", "serving", "tools", "api", "cli"},
    "tools": {"serving", "lecture", "api", "cli"},
    "api": {"cli"},
    "cli": set(),
    "benchmarks": set(),
}
# the package's lazy __getattr__ hands out the facade's names (pipeline.train, …) on first use
FACADE = {"pipeline": {"pipeline.api"}}


def layer_of(module: str) -> str:
    """pipeline.models.cnn → models; pipeline.config → shared; benchmarks.bench → benchmarks."""
    parts = module.split(".")
    if parts[0] == "benchmarks":
        return "benchmarks"
    if len(parts) == 1 or parts[1] in SHARED:
        return "shared"
    return "cli" if parts[1] in ENTRY else parts[1]


def modules():
    for root in (PACKAGE, BENCHMARKS):
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(REPO)
            name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
            yield name, relative


@pytest.mark.parametrize("module, path", list(modules()), ids=lambda v: str(v))
def test_dependencies_point_one_way(module, path):
    mine = layer_of(module)
    allowed = FACADE.get(module, set())
    wrong = sorted(
        m for m in makefile.imported_modules(path) if layer_of(m) in FORBIDDEN[mine] and m not in allowed
    )
    assert not wrong, f"{path} ({mine}) imports {wrong}: see docs/architecture.md"


def test_the_package_never_imports_benchmarks():
    wrong = []
    for _, path in modules():
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if path.parts[0] == "pipeline" and any(n.split(".")[0] == "benchmarks" for n in names):
                wrong.append(str(path))
    assert not wrong, f"{wrong} import benchmarks/, which sits above the package"


def test_the_architecture_map_names_every_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    drawn = set(re.findall(r"\w+", text.split("## The map", 1)[1].split("```")[1]))
    missing = [str(p) for _, p in modules() if p.stem != "__init__" and p.stem not in drawn]
    assert not missing, f"docs/architecture.md's map leaves out {missing}"


def test_every_layer_is_known():
    assert {layer_of(m) for m, _ in modules()} <= set(ORDER)


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for _, path in modules():
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_hasattr_probes_on_families_or_objectives():
    for _, path in modules():
        text = (REPO / path).read_text()
        assert not re.search(r"hasattr\((plan\.)?(family|objective)\b", text), path


@pytest.mark.parametrize("name", ["STORE_STAMP", "TRAIN_QUEUE"])
def test_the_makefile_and_the_layout_agree_on_paths(name):
    makefile = (REPO / "Makefile").read_text()
    (value,) = re.findall(rf"^{name} := (\S+)$", makefile, flags=re.M)
    assert value == getattr(layout, name)


def test_the_params_schema_is_current_and_params_yaml_follows_it():
    import jsonschema

    from pipeline.tools import schema

    committed = (REPO / "params.schema.json").read_text()
    assert committed == schema.render(), "run `python -m pipeline schema` and commit params.schema.json"
    rules = json.loads(committed)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    jsonschema.validate(params, rules)
    params["experiments"]["cnn-same"]["model"]["paddin"] = "same"  # a typo an editor should flag
    with pytest.raises(jsonschema.ValidationError, match="paddin"):
        jsonschema.validate(params, rules)
