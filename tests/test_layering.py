"""Imports flow one way (STYLE.md, docs/architecture.md): each package names its layer, and a module may import
its own package or packages of strictly lower layers, never a peer (same layer) or anything above it. Function-
level (lazy) imports, relative imports (`from ..data import x`) and dynamic ones (`importlib.import_module`,
`__import__`) count too. Strict layers also mean no import cycle between packages."""

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


def _resolve(package: list[str], level: int, module: str | None) -> str | None:
    """The absolute name of `from {'.' * level}{module} import ...` inside s2ikit package `package` (its parts below
    s2ikit); None when the dots climb out of s2ikit."""
    if level == 0:
        return module
    if level - 1 > len(package):
        return None
    base = ["s2ikit", *package[: len(package) - (level - 1)]]
    return ".".join(base + (module.split(".") if module else []))


def _leading_text(node: ast.expr) -> tuple[str, bool] | None:
    """A module name given to a dynamic import: (the text, whether it is the whole name) for a literal, or the literal
    start of an f-string or a `+` concatenation; None when no start is literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value), False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _leading_text(node.left)
        return (left[0], False) if left else None
    return None


def _dynamic_import(call: ast.Call) -> tuple[ast.expr, ast.expr | None, ast.expr | None] | None:
    """(name, package, level) of `importlib.import_module(name, package)` or `__import__(name, ..., level)`."""
    func = call.func
    callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if callee not in ("import_module", "__import__") or not call.args:
        return None
    keywords = {k.arg: k.value for k in call.keywords}
    if callee == "import_module":
        return call.args[0], call.args[1] if len(call.args) > 1 else keywords.get("package"), None
    return call.args[0], None, call.args[4] if len(call.args) > 4 else keywords.get("level")


def s2ikit_imports(source: str, package: list[str]) -> set[str]:
    """The top-level s2ikit packages a module imports (`from s2ikit import X` names X). `package` is the module's
    own package below s2ikit (["training"] for training/gan.py and for training/__init__.py), against which
    relative imports (`from ..data import x`, `from . import y`) resolve. Dynamic imports count as well:
    `importlib.import_module("s2ikit.x")` (or a relative name with its package) and `__import__("s2ikit.x")`; a
    computed name whose literal start (`"s2ikit." + name`) stops before the package is named is reported as `?`."""
    names = set()

    def add(module: str | None, imported: list[str]) -> None:
        if module is None:
            names.add("..")  # climbs out of s2ikit
        elif module == "s2ikit":
            names.update(n for n in imported if n != "__version__")
        elif module.startswith("s2ikit."):
            names.add(module.split(".")[1])

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            add(_resolve(package, node.level, node.module), [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, [])
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)):
            name_node, package_node, level_node = dynamic
            text = _leading_text(name_node)
            if text is None:
                continue  # a name with no literal start: nothing to read (s2ikit itself imports none this way)
            name, whole = text
            anchor, level = package, 0
            if name.startswith("."):  # import_module(".x", package="s2ikit.y")
                level = len(name) - len(name.lstrip("."))
                given = package_node.value if isinstance(package_node, ast.Constant) else None
                anchor = given.split(".")[1:] if isinstance(given, str) and given.startswith("s2ikit") else None
                name = name.lstrip(".")
            elif isinstance(level_node, ast.Constant) and isinstance(level_node.value, int):
                level = level_node.value  # __import__("x", globals(), locals(), [], 1)
            if level and anchor is None:
                module = "s2ikit.?"  # relative to a package the check cannot read
            else:
                module = _resolve(anchor, level, name or None)
                base = _resolve(anchor, level, None)
                if level and not whole and base not in (None, "s2ikit"):
                    whole = True  # the literal part already names the package: s2ikit.tts.{name}
            if module is not None and not whole and module.startswith("s2ikit") and module.count(".") < 2:
                module = "s2ikit.?"  # only the start is literal, and it stops before the package is named
            add(module, [])
    return names


def layering_problems(package: Path, layers: dict[str, int]) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        part = relative.parts[0].removesuffix(".py")
        if part not in layers:
            problems.append(f"{relative}: package '{part}' has no layer in LAYER")
            continue
        own_package = list(relative.parts[:-1])
        for target in sorted(s2ikit_imports(path.read_text(), own_package)):
            if target == part:
                continue
            if target == "..":
                problems.append(f"{relative} has a relative import that climbs out of s2ikit")
            elif target == "?":
                problems.append(f"{relative} imports a part of s2ikit the check cannot read (a computed name)")
            elif target not in layers:
                problems.append(f"{relative} imports s2ikit.{target}, which has no layer")
            elif layers[target] >= layers[part]:
                kind = "a peer" if layers[target] == layers[part] else "a higher layer"
                problems.append(f"{relative} imports s2ikit.{target} ({kind})")
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
        ("from ..evaluation.report import write_report\n", "training/gan.py imports s2ikit.evaluation (a peer)"),
        ("from .. import cli\n", "training/gan.py imports s2ikit.cli (a higher layer)"),
        ("from ... import core\n", "training/gan.py has a relative import that climbs out of s2ikit"),
        (
            "import importlib\nm = importlib.import_module('s2ikit.cli')\n",
            "training/gan.py imports s2ikit.cli (a higher layer)",
        ),
        (
            "from importlib import import_module\nimport_module('s2ikit.demo.app')\n",
            "training/gan.py imports s2ikit.demo (a peer)",
        ),
        (
            "import importlib\nimportlib.import_module('..cli', 's2ikit.training')\n",
            "training/gan.py imports s2ikit.cli (a higher layer)",
        ),
        (
            "def f():\n    return __import__('s2ikit.evaluation.report')\n",
            "training/gan.py imports s2ikit.evaluation (a peer)",
        ),
        ("__import__('cli', globals(), locals(), [], 2)\n", "training/gan.py imports s2ikit.cli (a higher layer)"),
        (
            "import importlib\nimportlib.import_module(f's2ikit.demo.{name}')\n",
            "training/gan.py imports s2ikit.demo (a peer)",
        ),
        (
            "import importlib\nimportlib.import_module('s2ikit.' + name)\n",
            "training/gan.py imports a part of s2ikit the check cannot read (a computed name)",
        ),
    ],
)
def test_the_check_catches_peer_and_upward_imports(tmp_path, source, expected):
    tree = _tree(tmp_path, {"training/gan.py": source, "core/x.py": "from s2ikit.models import y\n"})
    assert layering_problems(tree, LAYER) == [expected]


def test_relative_imports_resolve_against_the_module_own_package(tmp_path):
    """A package's __init__.py is that package: `from . import x` there stays inside it; in a subpackage `..` is
    still the same top-level package."""
    tree = _tree(
        tmp_path,
        {
            "training/__init__.py": "from . import engine\nfrom .gan import train_gan\n",
            "data/sources/cub.py": "from ..records import read_records\nfrom . import base\n",
            "data/sources/__init__.py": "from ...core import images\n",
            "cli.py": "from . import training\nfrom .core.export import export\n",
        },
    )
    assert layering_problems(tree, LAYER) == ["data/sources/__init__.py imports s2ikit.core (a higher layer)"]


def test_the_check_allows_downward_and_own_package_imports(tmp_path):
    clean = (
        "import importlib\nfrom s2ikit.core import x\nfrom s2ikit.training import engine\nfrom . import encoder\n"
        "from ..core.grid import grid\nfrom .. import utils\nimportlib.import_module('s2ikit.models.generator')\n"
        "importlib.import_module('.engine', package='s2ikit.training')\n__import__('os')\n"
        "importlib.import_module(f'torchvision.{name}')\n"
    )
    tree = _tree(tmp_path, {"training/gan.py": clean})
    assert layering_problems(tree, LAYER) == []


def test_a_new_package_must_be_given_a_layer(tmp_path):
    tree = _tree(tmp_path, {"newthing/a.py": "x = 1\n"})
    assert layering_problems(tree, LAYER) == ["newthing/a.py: package 'newthing' has no layer in LAYER"]
