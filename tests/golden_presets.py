"""Write tests/data/presets_golden.json: every shipped preset (pipelines/*.toml) resolved to its values.

    python tests/golden_presets.py        (or: make golden)

Run it after a change that is meant to change what a preset resolves to, and read the diff before committing:
tests/test_presets.py fails while the file and what the presets resolve to disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from s2ikit.config import as_dict, load_preset, presets_dir
from s2ikit.utils.atomic import write_bytes

GOLDEN = Path(__file__).resolve().parent / "data" / "presets_golden.json"


def golden_text() -> str:
    """`{preset name: as_dict(load_preset(name))}` for every shipped preset, as the golden file holds it."""
    names = sorted(path.stem for path in presets_dir().glob("*.toml"))
    return json.dumps({name: as_dict(load_preset(name)) for name in names}, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    write_bytes(GOLDEN, golden_text().encode())
    print(f"{GOLDEN}: {len(json.loads(golden_text()))} presets")
