"""The shard schema (data/shards.py) as the loader meets it: hostile member names, shards with no usable sample,
occasional bad samples."""

from __future__ import annotations

import io
import shutil
import tarfile
import warnings
from pathlib import Path

import pytest

from s2ikit.config import LoaderConfig
from s2ikit.data.loader import make_loader
from s2ikit.data.shards import has_split, read_shard, read_sizes, write_sizes
from s2ikit.utils.errors import UserError


def rewrite_shards(src: Path, dst: Path, member) -> None:
    """A copy of a prepared data set whose shards are rebuilt member by member: `member(name, data)` returns the
    (name, data) to store instead, or None to drop the member."""
    shutil.copytree(src, dst)
    for shard in sorted((dst / "shards").rglob("*.tar")):
        with tarfile.open(shard) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(shard, "w") as tar:
            for name, data in members:
                replaced = member(name, data)
                if replaced is not None:
                    info = tarfile.TarInfo(replaced[0])
                    info.size = len(replaced[1])
                    tar.addfile(info, io.BytesIO(replaced[1]))


def test_members_named_like_paths_are_skipped_with_a_warning_naming_the_shard(reference, tmp_path):
    shard = next((reference / "shards" / "train").glob("*.tar"))
    with tarfile.open(shard) as tar:
        good = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    key = good[0][0].split(".")[0]
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tar:
        for name, data in [(f"../{n}", d) for n, d in good[:3]] + [(f"/tmp/{good[0][0]}", good[0][1])] + good:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(f"sub/{key}.json")  # a key with a '/'
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.warns(UserWarning, match=rf"{hostile}: skipped 5 members .*first: '\.\./"):
        samples = list(read_shard(hostile))
    expected = [n.split(".")[0] for n, _ in good]
    assert [s["__key__"] for s in samples] == list(dict.fromkeys(expected))  # the plain ones, each once
    assert all("/" not in k and not k.startswith(".") for s in samples for k in s)
    # streamed through a command, the same members are skipped and the same samples come out
    url = f"pipe:cat {hostile}"
    with pytest.warns(UserWarning, match=rf"{url}: skipped 5 members .*first: '\.\./"):
        streamed = list(read_shard(url))
    assert [{**s, "__url__": str(hostile)} for s in streamed] == samples


@pytest.mark.parametrize("workers", [0, 1])
def test_shards_with_no_usable_sample_fail_in_one_line(reference, tmp_path, workers):
    """JPEG bytes stored as KEY.gif: no sample has an image member, so training would resample for ever."""
    data = tmp_path / "gif"
    rewrite_shards(reference, data, lambda name, b: (name.replace(".png", ".gif"), b))
    loader = make_loader(data, LoaderConfig(batch_size=4, shuffle_buffer=8, num_workers=workers))
    with warnings.catch_warnings(), pytest.raises(UserError) as error:
        warnings.simplefilter("ignore")
        next(iter(loader))
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{data / 'shards' / 'train'}: split 'train': no sample decodes")
    assert "no image member" in message
    with warnings.catch_warnings(), pytest.raises(UserError, match="split 'test': no sample decodes"):
        warnings.simplefilter("ignore")
        list(make_loader(data, LoaderConfig(split="test", mode="test", batch_size=4)))


def test_shards_with_no_sample_at_all_fail_in_one_line(reference, tmp_path):
    data = tmp_path / "empty"
    rewrite_shards(reference, data, lambda name, b: (f"../{name}", b))
    with warnings.catch_warnings(), pytest.raises(UserError, match=r"split 'train': no sample in a full pass"):
        warnings.simplefilter("ignore")
        next(iter(make_loader(data, LoaderConfig(batch_size=4, shuffle_buffer=8))))


def test_an_occasional_bad_sample_is_skipped_with_a_warning(reference, tmp_path):
    data = tmp_path / "one-bad"
    broken = []

    def damage(name, b):
        if name.endswith(".png") and not broken:
            broken.append(name.split(".")[0])
            return name, b[:40]  # a truncated PNG
        return name, b

    rewrite_shards(reference, data, damage)
    with pytest.warns(UserWarning, match=rf"sample '{broken[0]}'.*sample skipped"):
        batches = list(make_loader(data, LoaderConfig(split="test", mode="test", batch_size=5)))
    keys = {k for b in batches for k in b["key"]}
    assert len(keys) == 7 and broken[0] not in keys  # the test split's other 7 images


def test_sizes_json_round_trips_and_a_damaged_one_is_one_line(tmp_path):
    assert not has_split(tmp_path, "test")
    write_sizes(tmp_path, "test", {"shard-000000.tar": 3, "shard-000001.tar": 0})
    assert has_split(tmp_path, "test") and not has_split(tmp_path, "train")
    assert read_sizes(tmp_path, "test") == {"shard-000000.tar": 3, "shard-000001.tar": 0}
    sizes = tmp_path / "shards" / "test" / "sizes.json"
    for damaged in ('{"shard-000000.tar": 3', '["shard-000000.tar"]', '{"shard-000000.tar": "3"}'):
        sizes.write_text(damaged)
        with pytest.raises(UserError, match=r"sizes\.json: not "):
            make_loader(tmp_path, LoaderConfig(split="test", mode="test"))
