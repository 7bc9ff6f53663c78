"""Oxford-102 flowers with Reed et al.'s ten captions per image, spoken by the preset's TTS.

Layout under --root (data_manifests/oxford.toml):
    jpg/image_NNNNN.jpg                       102flowers.tgz (VGG)
    imagelabels.mat, setid.mat                labels 1..102 per image; VGG's train/val/test image ids
    text_c10/class_NNNNN/image_NNNNN.txt      Reed et al.'s captions (cvpr2016_flowers)
    flowers/{train,test}/filenames.pickle     StackGAN's unseen-class split, 82 / 20 classes (optional)

Without StackGAN's pickles the split is VGG's setid.mat (train + val -> train, test -> test; every class in
both splits), announced as a warning: results are then not comparable with the paper's.

Caption files must be UTF-8 (a byte-order mark is allowed); one in another encoding (latin-1, UTF-16) is
not guessed at: its image is left out and failures.jsonl names the file and says "not UTF-8".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from s2ikit.config import PrepareSource, Preset, limit_flag
from s2ikit.data.records import Record
from s2ikit.data.safe_pickle import load_name_list
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.layout import (
    OnDiskSource,
    check_layout,
    make_keys,
    split_counts,
)
from s2ikit.utils.checks import at_least, checked, setting
from s2ikit.utils.errors import UserError

PICKLES = {"train": "flowers/train/filenames.pickle", "test": "flowers/test/filenames.pickle"}


def read_mat_ids(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Integer vectors from a MATLAB file; a corrupt file or a missing variable is a one-line UserError."""
    from scipy.io import loadmat  # scipy is slow to import; only Oxford needs it

    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, MatReadError, OSError, ... for bad files
        raise UserError(f"{path}: not a readable .mat file ({type(e).__name__}: {e})") from None
    missing = [n for n in names if n not in mat]
    if missing:
        raise UserError(f"{path}: no variable '{missing[0]}' (found: {', '.join(k for k in mat if k[0] != '_')})")
    return {n: np.asarray(mat[n]).astype(np.int64).ravel() for n in names}


@dataclass(frozen=True)
@checked("oxford")
class OxfordConfig:
    """Oxford-102 flowers with Reed et al.'s captions, read from --root (layout in data_manifests/oxford.toml)."""

    # first N lines of each caption file; Reed et al. wrote 10 per image
    captions_per_image: int = setting(10, at_least(1))
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split; 0 = all


class OxfordSource(OnDiskSource):
    name = "oxford"
    needs_tts = True

    def __init__(self, preset: Preset, root: Path | None):
        super().__init__(preset, root)
        if self.config.captions_per_image < 1:
            raise UserError("oxford.captions_per_image must be at least 1")

    def identity(self) -> dict[str, Any]:
        return self._identity(["imagelabels.mat", "setid.mat", *PICKLES.values()], trees=("text_c10",))

    def check(self) -> None:
        root = check_layout(self.root, self.manifest)
        present = [split for split, path in PICKLES.items() if (root / path).is_file()]
        if len(present) == 1:
            other = PICKLES["test" if present == ["train"] else "train"]
            raise UserError(f"{root / other}: missing, but {PICKLES[present[0]]} is there; StackGAN ships both")

    def _splits(self, root: Path, n_images: int) -> dict[int, str | None]:
        if (root / PICKLES["train"]).is_file():
            owner: dict[str, str] = {}
            for split, relative in PICKLES.items():
                for entry in load_name_list(root / relative):  # "image_06734" or "class_00077/image_06734"
                    stem = PurePosixPath(entry.replace("\\", "/")).name.removesuffix(".jpg")
                    if owner.setdefault(stem, split) != split:
                        raise UserError(f"{root / relative}: '{entry}' is in both the train and the test list")
            return {i: owner.get(f"image_{i:05d}") for i in range(1, n_images + 1)}
        ids = read_mat_ids(root / "setid.mat", ("trnid", "valid", "tstid"))
        self.notes.append(
            "oxford: StackGAN's flowers/{train,test}/filenames.pickle not found, using setid.mat (every class in "
            "both splits, not the 82/20 unseen-class split): results are NOT comparable with the paper's"
        )
        split_of: dict[int, str | None] = dict.fromkeys(range(1, n_images + 1))
        split_of.update({int(i): "train" for i in np.concatenate([ids["trnid"], ids["valid"]])})
        split_of.update({int(i): "test" for i in ids["tstid"]})
        return split_of

    def index(self) -> list[Record]:
        root = check_layout(self.root, self.manifest)
        self.notes, self.left_out = [], []
        labels = read_mat_ids(root / "imagelabels.mat", ("labels",))["labels"]
        split_of = self._splits(root, len(labels))
        stems = [f"image_{i:05d}" for i in range(1, len(labels) + 1)]
        keys = make_keys(stems)
        unassigned = sum(s is None for s in split_of.values())
        if unassigned:
            self.notes.append(f"oxford: {unassigned} images are in neither split list, left out")
        drafts = [
            Record(
                key=keys[i - 1],
                split=split_of[i],
                class_id=int(labels[i - 1]) - 1,  # labels number from 1
                class_name=f"class_{int(labels[i - 1]):05d}",  # the caption folder's name
                image=f"jpg/{stems[i - 1]}.jpg",
                captions=(),
                attributes={"image_id": i},
            )
            for i in range(1, len(labels) + 1)
            if split_of[i] is not None
        ]
        records = self._attach_captions(
            drafts,
            lambda d: root / "text_c10" / d.class_name / f"{Path(d.image).stem}.txt",
            root / "text_c10",
            "Reed et al.'s captions",
        )
        counts = {"images": len(labels), "classes": len({int(v) for v in labels})}
        if (root / PICKLES["train"]).is_file():  # the published split counts are StackGAN's
            counts |= split_counts(drafts)
        self._note_counts(counts, records)
        return records


register_dataset(
    "oxford",
    OxfordSource,
    OxfordConfig,
    PrepareSource(
        "Oxford-102 flowers with Reed et al.'s captions (10 per image), spoken by TTS: 81,890 captions.\n\n"
        "The split is StackGAN's (flowers/{train,test}/filenames.pickle, 82/20 unseen classes) when present.\n\n"
        "Example: s2ikit prepare oxford --root data/oxford --out runs/oxford/data --workers 16 --limit 20",
        (limit_flag("oxford"),),
        tts=True,
    ),
    terms="Oxford-102's images come from the web and the data set is distributed for research; check its terms "
    "(and those of Reed et al.'s captions) before using these weights beyond research.",
)
