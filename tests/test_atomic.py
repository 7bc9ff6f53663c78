"""Atomic writes (utils/atomic.py): a full disk is one line naming the file and the free space, and the file
that was there is left as it was; temporary files of killed processes are cleared."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections import namedtuple

import pytest

from s2ikit.utils import atomic
from s2ikit.utils.atomic import atomic_path, remove_stale_temps, temp_path, write_bytes
from s2ikit.utils.errors import UserError


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.ENOSPC, "no space left on device"), (errno.EDQUOT, "disk quota exceeded")]
)
def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path, code, reason):
    path = tmp_path / "checkpoints" / "gan-state.pt"
    write_bytes(path, b"the previous checkpoint")
    with pytest.raises(UserError) as error:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(b"half of a new one")
            raise OSError(code, os.strerror(code))
    message = str(error.value)
    assert message.startswith(f"{path}: {reason} (") and message.endswith("); nothing was replaced")
    assert " free on " in message and "\n" not in message
    assert path.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in path.parent.iterdir()) == ["gan-state.pt"]  # no temporary file left


@pytest.mark.parametrize(
    "text",
    [
        "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598",  # torch.save on a full tmpfs
        "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: file write failed",
    ],
)
def test_torch_save_failing_on_a_nearly_full_disk_is_one_line(tmp_path, monkeypatch, text):
    """torch.save's C++ writer reports a full disk as a RuntimeError with no errno; the free space tells."""
    usage = namedtuple("usage", "total used free")
    path = tmp_path / "net.pt"
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10 << 30, (10 << 30) - (12 << 20), 12 << 20))
    failure = RuntimeError(text)
    with pytest.raises(
        UserError, match=rf"^{path}: no space left on device \(12 MB free on .*\); nothing was replaced$"
    ):
        with atomic_path(path):
            raise failure
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10 << 30, 0, 10 << 30))
    with pytest.raises(RuntimeError, match="enforce fail"):  # plenty of space: not a full disk, not hidden
        with atomic_path(path):
            raise failure


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(ValueError, match="a bug"):
        with atomic_path(tmp_path / "x"):
            raise ValueError("a bug")
    assert list(tmp_path.iterdir()) == []


def test_only_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / "work").mkdir()
    stale = tmp_path / "work" / f".unit.npz.tmp-{dead_pid}"
    mine = temp_path(tmp_path / "work" / "other.npz")
    unrelated = tmp_path / "work" / ".hidden-notes"
    for path in (stale, mine, unrelated):
        path.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 1
    assert not stale.exists() and mine.exists() and unrelated.exists()
    assert remove_stale_temps(tmp_path, keep_live=False) == 1  # finalize: every unit done, all of them are litter
    assert not mine.exists() and unrelated.exists()
