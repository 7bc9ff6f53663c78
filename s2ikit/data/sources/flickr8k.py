"""Flickr8k with real speech: the Flickr Audio Caption Corpus (Harwath & Glass), five spoken captions per image.

Layout under --root (data_manifests/flickr8k.toml):
    Flicker8k_Dataset/<image>.jpg                               (sic: the archive's spelling)
    Flickr_8k.{train,dev,test}Images.txt, Flickr8k.token.txt    at the root or in Flickr8k_text/
    flickr_audio/wavs/<image>_<n>.wav, flickr_audio/wav2capt.txt  (wav, image, "#n" per line)

No synthesis: the speech step reads each wav (16 kHz) and resamples it to the feature rate. A caption's text
is its Flickr8k transcript when Flickr8k.token.txt is there (shown in grids), else empty. There are no
classes (class_id -1). Dev images are left out unless flickr8k.dev_split = "train".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from s2ikit.config import PrepareSource, Preset, limit_flag
from s2ikit.data.records import Caption, Record
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.layout import (
    OnDiskSource,
    check_layout,
    first_per_split,
    index_failure,
    make_keys,
    read_table,
)
from s2ikit.utils.checks import at_least, checked, setting
from s2ikit.utils.errors import UserError

SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
TEXT_DIRS = ("", "Flickr8k_text")  # the text archive unpacks either way
IMAGES, WAVS, WAV2CAPT = "Flicker8k_Dataset", "flickr_audio/wavs", "flickr_audio/wav2capt.txt"


@dataclass(frozen=True)
@checked("flickr8k")
class Flickr8kConfig:
    """Flickr8k images with the Flickr Audio Caption Corpus's recorded speech (5 utterances per image)."""

    # Flickr8k's 1,000 dev images: "none" leaves them out (S2IGAN trains on train and tests on test; the
    # encoder carves its validation set out of train), "train" adds them to the training split.
    dev_split: Literal["none", "train"] = "none"
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split; 0 = all


class Flickr8kSource(OnDiskSource):
    name = "flickr8k"
    needs_tts = False

    def __init__(self, preset: Preset, root: Path | None):
        super().__init__(preset, root)
        if self.config.dev_split not in ("none", "train"):
            raise UserError(f"flickr8k.dev_split must be none or train, not '{self.config.dev_split}'")

    def _text_dir(self, root: Path) -> str:
        for folder in TEXT_DIRS:
            if (root / folder / SPLIT_FILES["train"]).is_file():
                return folder
        return ""

    def identity(self) -> dict[str, Any]:
        text = self._text_dir(Path(self.root or ""))
        return self._identity([WAV2CAPT] + [str(Path(text) / f) for f in (*SPLIT_FILES.values(), "Flickr8k.token.txt")])

    def check(self) -> None:
        root = check_layout(self.root, self.manifest)
        text = self._text_dir(root)
        for name in SPLIT_FILES.values():
            if not (root / text / name).is_file():
                also = f" (also looked in {root / TEXT_DIRS[1]})" if not text else ""
                raise UserError(
                    f"{root / text / name}: missing{also}; expected the Flickr8k layout (see README, 'Data sets')"
                )

    def _transcripts(self, root: Path, text: str) -> dict[tuple[str, int], str]:
        path = root / text / "Flickr8k.token.txt"
        if not path.is_file():
            self.notes.append(f"flickr8k: {path} not found; captions carry no transcript (the audio is complete)")
            return {}
        out = {}
        for ref, sentence in read_table(path, 2):  # "1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress ..."
            image, _, n = ref.partition("#")
            if n.isdigit():
                out[(image, int(n))] = sentence.strip()
        return out

    def index(self) -> list[Record]:
        self.check()
        root = Path(self.root or "")
        self.notes, self.left_out = [], []
        text = self._text_dir(root)
        split_of: dict[str, str] = {}
        per_split: dict[str, int] = {}
        for split, name in SPLIT_FILES.items():
            images = [row[0] for row in read_table(root / text / name, 1)]
            per_split[split] = len(images)
            for image in images:
                if split_of.setdefault(image, split) != split:
                    raise UserError(f"{root / text / name}: {image} is also in the {split_of[image]} list")
        spoken: dict[str, dict[int, str]] = {}
        wav_rows = read_table(root / WAV2CAPT, 3)  # "2865703567_52de2444f2_0.wav 2865703567_52de2444f2.jpg #0"
        for wav, image, n in wav_rows:
            if not n.lstrip("#").isdigit():
                raise UserError(f"{root / WAV2CAPT}: caption number '{n}' for {wav} is not '#<digit>'")
            spoken.setdefault(image, {})[int(n.lstrip("#"))] = wav
        transcripts = self._transcripts(root, text)
        wanted = {"train": "train", "test": "test", "dev": "train" if self.config.dev_split == "train" else None}
        ordered = list(split_of)  # train list, then dev, then test, each in its file's order
        keys = dict(zip(ordered, make_keys([Path(i).stem for i in ordered])))
        drafts = [
            Record(
                key=keys[image],
                split=wanted[split_of[image]],
                class_id=-1,
                class_name="",
                image=f"{IMAGES}/{image}",
                captions=tuple(
                    Caption(transcripts.get((image, n), ""), f"{WAVS}/{wav}")
                    for n, wav in sorted(spoken.get(image, {}).items())
                ),
            )
            for image in ordered
            if wanted[split_of[image]] is not None
        ]
        records = []
        for draft in first_per_split(drafts, self.config.limit):
            if draft.captions:
                records.append(draft)
            else:
                self.left_out.append(
                    index_failure(draft.key, f"{root / WAV2CAPT}: no spoken caption for {draft.image}")
                )
        if not records:
            raise UserError(f"{root / WAV2CAPT}: no image of the split lists has a spoken caption")
        counts = {f"{s}_images": n for s, n in per_split.items()}
        counts |= {"images": len(split_of), "spoken_captions": len(wav_rows)}
        self._note_counts(counts, records)
        return records


register_dataset(
    "flickr8k",
    Flickr8kSource,
    Flickr8kConfig,
    PrepareSource(
        "Flickr8k with the Flickr Audio Caption Corpus: 5 recorded utterances per image (no TTS).\n\n"
        "Example: s2ikit prepare flickr8k --root data/flickr8k --out runs/flickr8k/data --workers 4",
        (limit_flag("flickr8k"),),
    ),
    terms="Flickr8k and the Flickr Audio Caption Corpus are distributed for research use; check their terms "
    "before using these weights beyond research.",
)
