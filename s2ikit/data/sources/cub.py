"""CUB-200-2011 birds with Reed et al.'s ten captions per image, spoken by the preset's TTS.

Layout under --root (data_manifests/cub.toml):
    CUB_200_2011/{images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt}
    CUB_200_2011/images/<class>/<name>.jpg
    birds/text/<class>/<name>.txt                   Reed et al.'s captions (as shipped with AttnGAN/DF-GAN)
    birds/{train,test}/filenames.pickle             StackGAN's unseen-class split (optional)

The split decides whether numbers compare with the paper's: StackGAN's pickles (150 train / 50 test classes)
when present; else --test-classes FILE; else CUB's own train_test_split.txt (every class in both splits).
The last two are announced as warnings. An image whose caption file is missing, or is not UTF-8 (a byte-order
mark is allowed; latin-1 or UTF-16 is refused, not guessed at), is left out of the index and listed in
failures.jsonl, which names the file; the rest of the data set is prepared as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from s2ikit.config import PrepareFlag, PrepareSource, Preset, limit_flag
from s2ikit.data.records import Record
from s2ikit.data.safe_pickle import load_name_list
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.layout import (
    OnDiskSource,
    check_layout,
    load_photo,
    make_keys,
    read_table,
    split_counts,
)
from s2ikit.utils.checks import at_least, checked, setting
from s2ikit.utils.errors import UserError

META = "CUB_200_2011"
TABLES = ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
PICKLES = {"train": "birds/train/filenames.pickle", "test": "birds/test/filenames.pickle"}


@dataclass(frozen=True)
@checked("cub")
class CUBConfig:
    """CUB-200-2011 with Reed et al.'s captions, read from --root (layout in data_manifests/cub.toml)."""

    # first N lines of each caption file; Reed et al. wrote 10 per image
    captions_per_image: int = setting(10, at_least(1))
    # Crop around the bird's bounding box first, as AttnGAN/S2IGAN do: a square of half-side 0.75 x the
    # box's longer side, centred on the box, clamped to the image.
    bbox_crop: bool = True
    # Used only without StackGAN's birds/{train,test}/filenames.pickle: a file naming the test classes
    # (one per line, "001.Black_footed_Albatross" or its number in classes.txt), relative to --root or
    # absolute. Empty: CUB's own train_test_split.txt (every class in both splits; not the paper's split).
    test_classes: str = ""
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split (a quick first try); 0 = all


def attngan_crop(bbox: list[int]) -> Any:
    """AttnGAN's get_imgs: a square of half-side int(0.75 * max(w, h)) around the box's centre, clamped."""
    x, y, w, h = bbox
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return lambda width, height: (max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r))


class CUBSource(OnDiskSource):
    name = "cub"
    needs_tts = True

    def __init__(self, preset: Preset, root: Path | None):
        super().__init__(preset, root)
        if self.config.captions_per_image < 1:
            raise UserError("cub.captions_per_image must be at least 1")

    def _test_classes_path(self) -> Path | None:
        if not self.config.test_classes:
            return None
        return Path(self.root or "") / self.config.test_classes  # an absolute path stays absolute

    def identity(self) -> dict[str, Any]:
        files = [f"{META}/{t}" for t in TABLES] + list(PICKLES.values())
        files += [self.config.test_classes] if self.config.test_classes else []  # absolute stays absolute
        return self._identity(files, trees=("birds/text",))

    def check(self) -> None:
        root = check_layout(self.root, self.manifest)
        present = [split for split, path in PICKLES.items() if (root / path).is_file()]
        if len(present) == 1:
            other = PICKLES["test" if present == ["train"] else "train"]
            raise UserError(f"{root / other}: missing, but {PICKLES[present[0]]} is there; StackGAN ships both")
        path = self._test_classes_path()
        if path is not None and not path.is_file():
            raise UserError(f"{path}: missing (--test-classes / cub.test_classes)")

    def _splits(
        self, root: Path, classes: dict[int, str], stems: dict[int, str], labels: dict[int, int]
    ) -> tuple[dict[int, str | None], str]:
        """image id -> split, and which split source decided it."""
        if (root / PICKLES["train"]).is_file():
            owner: dict[str, str] = {}
            for split, relative in PICKLES.items():
                for entry in load_name_list(root / relative):
                    stem = PurePosixPath(entry.replace("\\", "/")).name.removesuffix(".jpg")
                    if owner.setdefault(stem, split) != split:
                        raise UserError(f"{root / relative}: '{entry}' is in both the train and the test list")
            return {i: owner.get(stem) for i, stem in stems.items()}, "stackgan"
        path = self._test_classes_path()
        if path is not None:
            by_name = {name: cid for cid, name in classes.items()}
            test = set()
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"{path}: cannot read the test classes ({e}); expected UTF-8 text") from None
            for line_no, line in enumerate(text.splitlines(), 1):
                name = line.strip()
                if not name:
                    continue
                cid = int(name) if name.isdigit() else by_name.get(name)
                if cid not in classes:
                    raise UserError(f"{path}:{line_no}: '{name}' is not a class of {META}/classes.txt")
                test.add(cid)
            self.notes.append(
                f"cub: unseen-class split from {path} ({len(test)} test classes), not StackGAN's "
                f"birds/{{train,test}}/filenames.pickle: results are NOT comparable with the paper's"
            )
            return {i: "test" if labels[i] in test else "train" for i in stems}, "test-classes"
        rows = read_table(root / META / "train_test_split.txt", 2, numeric=2)
        is_train = {int(float(i)): flag == "1" for i, flag in rows}
        self.notes.append(
            f"cub: StackGAN's birds/{{train,test}}/filenames.pickle not found, using {META}/train_test_split.txt "
            "(every class in both splits, not the unseen-class split): results are NOT comparable with the "
            "paper's; add the pickles or pass --test-classes FILE"
        )
        return {i: "train" if is_train.get(i, True) else "test" for i in stems}, "train_test_split"

    def index(self) -> list[Record]:
        root = check_layout(self.root, self.manifest)
        self.notes, self.left_out = [], []
        table = root / META
        classes = {int(float(i)): name for i, name in read_table(table / "classes.txt", 2, numeric=1)}
        paths = {int(float(i)): path for i, path in read_table(table / "images.txt", 2, numeric=1)}
        labels = {int(float(i)): int(float(c)) for i, c in read_table(table / "image_class_labels.txt", 2, 2)}
        boxes = {
            int(float(r[0])): [int(float(v)) for v in r[1:]] for r in read_table(table / "bounding_boxes.txt", 5, 5)
        }
        for name, rows in (("image_class_labels.txt", labels), ("bounding_boxes.txt", boxes)):
            missing = next((i for i in paths if i not in rows), None)
            if missing is not None:
                raise UserError(f"{table / name}: no row for image {missing} ({paths[missing]})")
        unknown = next((i for i in paths if labels[i] not in classes), None)
        if unknown is not None:
            raise UserError(
                f"{table / 'image_class_labels.txt'}: image {unknown} has class {labels[unknown]}, not in classes.txt"
            )
        stems = {i: PurePosixPath(p).stem for i, p in paths.items()}
        split_of, source = self._splits(root, classes, stems, labels)
        keys = dict(zip(paths, make_keys([stems[i] for i in paths])))
        unassigned = [i for i in paths if split_of[i] is None]
        if unassigned:
            self.notes.append(f"cub: {len(unassigned)} images are in neither filenames.pickle, left out")
        drafts = [
            Record(
                key=keys[i],
                split=split_of[i],
                class_id=labels[i] - 1,  # classes.txt numbers from 1
                class_name=classes[labels[i]],
                image=f"{META}/images/{paths[i]}",
                captions=(),
                attributes={"image_id": i, "bbox": boxes[i], "crop": self.config.bbox_crop},
            )
            for i in paths
            if split_of[i] is not None
        ]
        records = self._attach_captions(
            drafts,
            lambda d: root / "birds" / "text" / PurePosixPath(paths[d.attributes["image_id"]]).with_suffix(".txt"),
            root / "birds/text",
            "the Reed et al. captions",
        )
        self._count(drafts, records, source, len(paths), len(classes))
        return records

    def _count(self, drafts: list[Record], records: list[Record], source: str, n_images: int, n_classes: int) -> None:
        counts = {"images": n_images, "classes": n_classes}
        if source == "stackgan":  # the published split counts are StackGAN's
            counts |= split_counts(drafts)
        self._note_counts(counts, records)
        short = sum(len(r.captions) < self.config.captions_per_image for r in records)
        if short:
            self.notes.append(f"cub: {short} images have fewer than {self.config.captions_per_image} captions")

    def load_image(self, record: Record, size: int) -> Image.Image:
        crop = attngan_crop(record.attributes["bbox"]) if record.attributes.get("crop") else None
        return load_photo(Path(self.root or "") / record.image, size, crop)


register_dataset(
    "cub",
    CUBSource,
    CUBConfig,
    PrepareSource(
        "CUB-200-2011 birds with Reed et al.'s captions (10 per image), spoken by TTS: 117,880 captions.\n\n"
        "The split is StackGAN's (birds/{train,test}/filenames.pickle, 150/50 unseen classes) when present.\n\n"
        "Example: s2ikit prepare cub --root data/cub --out runs/cub/data --workers 16 --limit 20",
        (
            limit_flag("cub"),
            PrepareFlag(
                "--test-classes",
                "cub.test_classes",
                "Test class names, one per line; used only without StackGAN's pickles.",
                Path,
            ),
            PrepareFlag(
                "--bbox-crop/--no-bbox-crop",
                "cub.bbox_crop",
                "Crop around the bird's bounding box first (default: on).",
                bool,
            ),
        ),
        tts=True,
    ),
    terms="CUB-200-2011's images come from Flickr and the data set is distributed for non-commercial research; "
    "check its terms (and those of Reed et al.'s captions) before using these weights beyond research.",
)
