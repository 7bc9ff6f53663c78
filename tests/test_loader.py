import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import torchrun

from s2ikit.config import LoaderConfig
from s2ikit.data.loader import make_loader
from s2ikit.data.records import read_index
from s2ikit.data.shards import ALLOW_PIPE
from s2ikit.utils.errors import UserError


def test_test_mode_yields_every_test_caption_exactly_once(reference):
    expected = sorted(
        f"{r.key}/{i}"
        for r in read_index(reference / "index.jsonl")
        if r.split == "test"
        for i in range(len(r.captions))
    )
    loader = make_loader(reference, LoaderConfig(split="test", mode="test", batch_size=5))
    seen = [f"{k}/{int(c)}" for batch in loader for k, c in zip(batch["key"], batch["caption_index"])]
    assert sorted(seen) == expected and len(seen) == 16


def test_train_batches_are_padded_with_lengths(reference):
    loader = make_loader(reference, LoaderConfig(split="train", batch_size=4, shuffle_buffer=8))
    batches = list(loader)
    assert len(batches) == loader.num_batches == 2
    batch = batches[0]
    assert batch["image"].shape == (4, 3, 32, 32)
    assert -1.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    lengths = batch["mel_lengths"]
    assert batch["mel"].shape == (4, int(lengths.max()), 40)
    for row, n in enumerate(lengths.tolist()):
        assert torch.all(batch["mel"][row, n:] == 0)  # padding is zero
        assert torch.any(batch["mel"][row, n - 1] != 0)  # the last real frame is data
    index = {r.key: r for r in read_index(reference / "index.jsonl")}
    for key, c, text, cls in zip(batch["key"], batch["caption_index"], batch["text"], batch["class_id"]):
        assert index[key].captions[int(c)].text == text and index[key].class_id == int(cls)


def test_train_order_is_reproducible_from_the_seed(reference):
    def keys(seed):
        return [b["key"] for b in make_loader(reference, LoaderConfig(batch_size=4, shuffle_buffer=8, seed=seed))]

    assert keys(3) == keys(3)
    assert keys(3) != keys(4)


def test_missing_shards_is_a_clear_error(tmp_path):
    try:
        make_loader(tmp_path, LoaderConfig())
    except UserError as e:
        assert "sizes.json: missing" in str(e)
    else:
        raise AssertionError("expected a UserError")


def test_two_ddp_ranks_get_equal_batch_counts(reference, tmp_path):
    prefix = tmp_path / "rank"
    result = torchrun([str(Path(__file__).with_name("ddp_loader_check.py")), str(reference), str(prefix)], 29533, 180)
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = [json.loads(Path(f"{prefix}.{r}.json").read_text()) for r in (0, 1)]
    # 8 train images, batch 2, 2 ranks -> 2 batches per rank, the same on both
    assert [len(r["train"]) for r in ranks] == [2, 2] == [r["num_batches"] for r in ranks]
    # test mode splits shards between ranks: together they cover every test caption exactly once
    together = ranks[0]["test"] + ranks[1]["test"]
    assert len(together) == len(set(together)) == 16
    assert ranks[0]["test"] and ranks[1]["test"]


def test_shard_members_have_plain_headers(reference):
    """One 512-byte header per member: a PAX header each (tarfile's answer to a float mtime) slowed reading 26%."""
    import tarfile

    for shard in sorted((reference / "shards").glob("*/*.tar")):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert members and all(m.pax_headers == {} and m.mtime == 0 for m in members), shard
            assert all(m.offset_data - m.offset == 512 for m in members), shard


def _batches(data: Path, config: LoaderConfig) -> list[tuple]:
    """What a user gets from the loader: keys, captions, image and log-mel tensors, batch by batch."""
    return [
        (b["key"], b["caption_index"].tolist(), b["image"], b["mel"], b["mel_lengths"].tolist())
        for b in make_loader(data, config)
    ]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and x[4] == y[4] and torch.equal(x[2], y[2]) and torch.equal(x[3], y[3])
        for x, y in zip(a, b)
    )


def moved_shards(reference: Path, tmp_path: Path, template: str) -> Path:
    """A copy of the prepared data set whose tars were moved to tmp_path/bucket/<split>/ and are read back
    through url-template.txt (`template`, with {bucket} for that folder)."""
    data, bucket = tmp_path / "data", tmp_path / "bucket"
    shutil.copytree(reference, data)
    for split in ("train", "test"):
        (bucket / split).mkdir(parents=True)
        for tar in sorted((data / "shards" / split).glob("*.tar")):
            tar.rename(bucket / split / tar.name)
        line = template.replace("{bucket}", str(bucket / split))
        (data / "shards" / split / "url-template.txt").write_text(f"# where the shards are\n{line}\n")
    return data


@pytest.mark.parametrize("template", ["pipe:cat {bucket}/{name}", "file:{bucket}/{name}"])
def test_shards_stream_from_urls_with_the_same_samples_as_local_files(reference, tmp_path, template, monkeypatch):
    monkeypatch.setenv(ALLOW_PIPE, "1")
    data = moved_shards(reference, tmp_path, template)
    test = LoaderConfig(split="test", mode="test", batch_size=5)
    streamed = _batches(data, test)
    assert sum(len(b[0]) for b in streamed) == 16 and _same(streamed, _batches(reference, test))
    train = LoaderConfig(batch_size=4, shuffle_buffer=8, seed=3)
    assert _same(_batches(data, train), _batches(reference, train))  # the same draws, in the same order


def test_a_pipe_command_in_a_data_folder_runs_only_when_the_user_allows_it(reference, tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_PIPE, raising=False)
    marker = tmp_path / "ran"
    data = moved_shards(reference, tmp_path, f"pipe:touch {marker}; cat {{bucket}}/{{name}}")
    with pytest.raises(UserError, match=rf"url-template\.txt: names shards through a shell command .*{ALLOW_PIPE}=1"):
        list(make_loader(data, LoaderConfig(split="test", mode="test", batch_size=5)))
    assert not marker.exists()
    monkeypatch.setenv(ALLOW_PIPE, "1")
    assert sum(len(b[0]) for b in _batches(data, LoaderConfig(split="test", mode="test", batch_size=5))) == 16
    assert marker.exists()


def test_a_failing_shard_command_is_one_line_naming_the_split(reference, tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_PIPE, "1")
    data = moved_shards(reference, tmp_path, "pipe:cat {bucket}/missing-{name}")
    with warnings.catch_warnings(record=True) as seen, pytest.raises(UserError) as error:
        warnings.simplefilter("always")
        list(make_loader(data, LoaderConfig(split="test", mode="test", batch_size=5)))
    assert str(error.value).startswith(f"{data / 'shards' / 'test'}: split 'test': no sample in a full pass")
    assert any("pipe:cat" in str(w.message) and "damaged shard" in str(w.message) for w in seen)


def test_a_url_no_handler_reads_is_one_line(reference, tmp_path):
    data = moved_shards(reference, tmp_path, "nosuchscheme://bucket/{name}")
    with pytest.raises(UserError, match=r"^nosuchscheme://bucket/shard-000000\.tar: cannot open nosuchscheme: URLs"):
        list(make_loader(data, LoaderConfig(split="test", mode="test", batch_size=5)))


def test_a_bad_url_template_or_shard_name_is_one_line(reference, tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_PIPE, "1")
    data = moved_shards(reference, tmp_path, "pipe:cat {bucket}/{name}")
    template = data / "shards" / "test" / "url-template.txt"
    for text, problem in [("pipe:cat a\npipe:cat b\n", "expected one line"), ("pipe:cat x.tar\n", "must hold {name}")]:
        template.write_text(text)
        with pytest.raises(UserError, match=rf"url-template\.txt: .*{re.escape(problem)}"):
            make_loader(data, LoaderConfig(split="test", mode="test"))
    template.write_text("pipe:cat {name}\n")
    sizes = data / "shards" / "test" / "sizes.json"
    sizes.write_text(json.dumps({"x.tar; touch pwned": 3}))  # would be words of the shell command
    with pytest.raises(UserError, match=r"sizes\.json: 'x\.tar; touch pwned' is not a shard file name"):
        make_loader(data, LoaderConfig(split="test", mode="test"))
    assert not (Path.cwd() / "pwned").exists()
