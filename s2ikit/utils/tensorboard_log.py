"""Optional TensorBoard event files: scalars and images in RUN/tensorboard/, when `tensorboard` is installed.

`pip install 's2ikit[tensorboard]'` turns them on; without the package every call is a no-op, so nothing else
has to know whether it is there. View with `tensorboard --logdir runs/` (each run folder is one run there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EVENTS_DIR = "tensorboard"  # inside a run folder


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """One writer on `folder`. `purge_step`: the first step a (re)started run writes again; TensorBoard then
    hides the earlier run's events from that step on."""

    def __init__(self, folder: str | Path, purge_step: int | None = None, enabled: bool = True):
        self.writer = None
        if enabled and tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def scalars(self, values: dict[str, Any], step: int, prefix: str = "") -> None:
        """Every finite int or float of `values` (bools and text are left out)."""
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                self.writer.add_scalar(f"{prefix}{key}", value, step)
        self.writer.flush()

    def image(self, tag: str, path: str | Path, step: int) -> None:
        """A PNG (a sample grid) as an image event."""
        if self.writer is None or not Path(path).is_file():
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as picture:
            array = np.asarray(picture.convert("RGB"))
        self.writer.add_image(tag, array, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
