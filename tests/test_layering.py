"""Imports flow one way (STYLE.md, docs/architecture.md): each package names its layer, and a module may import
its own package or packages of strictly lower layers, never a peer (same layer) or anything above it. Function-
level (lazy) imports count too. Strict layers also mean no import cycle between packages."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "s2ikit"
LAYER = {
    "__main__": 8,
    "cli": 7,
    "preparation": 6,  # peers: prepare data, train, evaluate; they share only what lies below
    "training": 6,
    "evaluation": 6,
    "doctor": 6,
    "demo": 6,  # the web page to speak into: a peer of the commands, it uses only the library below
    "metrics": 5,  # metrics by name, run by evaluation, select and training snapshots
    "core": 4,  # file formats, factories, inference: the library every command shares
    "tts": 3,
    "models": 2,  # networks only: import no data, training or anything else of s2ikit
    "data": 2,
    "audio": 2,
    "config": 1,
    "utils": 0,
    "__init__": 8,  # the package root: re-exports SpeechToImage; everything else imports only __version__ from it
}


def s2ikit_imports(source: str) -> set[str]:
    """The top-level s2ikit packages a module imports (`from s2ikit import X` names X)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "s2ikit":
                names |= {a.name for a in node.names if a.name != "__version__"}
            elif node.module.startswith("s2ikit."):
                names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("s2ikit.")}
    return names


def layering_problems(package: Path, layers: dict[str, int]) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        part = path.relative_to(package).parts[0].removesuffix(".py")
        if part not in layers:
            problems.append(f"{path.relative_to(package)}: package '{part}' has no layer in LAYER")
            continue
        for target in s2ikit_imports(path.read_text()):
            if target == part:
                continue
            if target not in layers:
                problems.append(f"{path.relative_to(package)} imports s2ikit.{target}, which has no layer")
            elif layers[target] >= layers[part]:
                kind = "a peer" if layers[target] == layers[part] else "a higher layer"
                problems.append(f"{path.relative_to(package)} imports s2ikit.{target} ({kind})")
    return problems


def test_imports_flow_one_way():
    assert layering_problems(PACKAGE, LAYER) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from s2ikit.evaluation.report import write_report\n", "training/gan.py imports s2ikit.evaluation (a peer)"),
        ("def f():\n    import s2ikit.cli\n", "training/gan.py imports s2ikit.cli (a higher layer)"),
        ("from s2ikit import preparation\n", "training/gan.py imports s2ikit.preparation (a peer)"),
    ],
)
def test_the_check_catches_peer_and_upward_imports(tmp_path, source, expected):
    tree = _tree(tmp_path, {"training/gan.py": source, "core/x.py": "from s2ikit.models import y\n"})
    assert layering_problems(tree, LAYER) == [expected]


def test_the_check_allows_downward_and_own_package_imports(tmp_path):
    tree = _tree(tmp_path, {"training/gan.py": "from s2ikit.core import x\nfrom s2ikit.training import engine\n"})
    assert layering_problems(tree, LAYER) == []


def test_a_new_package_must_be_given_a_layer(tmp_path):
    tree = _tree(tmp_path, {"newthing/a.py": "x = 1\n"})
    assert layering_problems(tree, LAYER) == ["newthing/a.py: package 'newthing' has no layer in LAYER"]
