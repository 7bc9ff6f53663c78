"""Imports flow one way (STYLE.md): cli -> pipelines/doctor -> data/audio/tts/models -> config -> utils."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "s2ikit"
LAYER = {
    "cli": 4,
    "pipelines": 3,
    "training": 3,
    "evaluation": 3,
    "doctor": 3,
    "models": 2,
    "data": 2,
    "audio": 2,
    "tts": 2,
    "config": 1,
    "utils": 0,
    "__init__": 0,
    "__main__": 5,
}


def s2ikit_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("s2ikit."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("s2ikit.")}
    return names


def test_imports_flow_one_way():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for target in s2ikit_imports(path):
            if LAYER[target] > LAYER[part] or (part == "models" and target in ("data", "training")):
                problems.append(f"{path.relative_to(PACKAGE)} imports s2ikit.{target}")
    assert not problems, problems
