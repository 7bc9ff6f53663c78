"""The GAN's speech cache file: computed once, memory-mapped, reused only for the same encoder, data and path."""

import threading
from contextlib import nullcontext

import h5py
import numpy as np
import pytest
import torch

from s2ikit.config import LoaderConfig
from s2ikit.core.factories import load_encoders
from s2ikit.data.loader import make_loader
from s2ikit.training import speech_cache
from s2ikit.training.speech_cache import CACHE_FILE, SpeechEmbeddings


class Counting(torch.nn.Module):
    """The encoder, counting the utterances it embeds."""

    def __init__(self, speech: torch.nn.Module):
        super().__init__()
        self.speech, self.seen = speech, 0

    def forward(self, mel, lengths):
        self.seen += len(lengths)
        return self.speech(mel, lengths)


@pytest.fixture
def speech(encoder_run):
    return load_encoders(encoder_run)[0].speech.eval()


def cached(encoder, reference, path, **kwargs) -> SpeechEmbeddings:
    return SpeechEmbeddings(encoder, nullcontext(), torch.device("cpu"), reference, cache_file=path, **kwargs)


def test_the_file_is_written_once_then_mapped_with_the_embeddings_computed_in_process(reference, speech, tmp_path):
    path = tmp_path / CACHE_FILE
    in_process = SpeechEmbeddings(speech, nullcontext(), torch.device("cpu"), reference)
    first, again = Counting(speech), Counting(speech)
    written = cached(first, reference, path, precision="fp32")
    assert path.is_file() and first.seen == len(in_process.known) > 0
    read = cached(again, reference, path, precision="fp32")
    assert again.seen == 0  # a restart reads the file: no utterance embedded again
    assert isinstance(read.table, np.memmap) and read.known == in_process.known
    for seed in (0, 1):
        for batch in make_loader(reference, LoaderConfig(batch_size=3, seed=seed)):
            expected = in_process(batch)  # bit for bit what the GAN computed without a file
            assert torch.equal(written(batch), expected) and torch.equal(read(batch), expected)
    with h5py.File(path) as h5:
        keys = [k.decode() for k in h5["keys"][:]]
        assert h5["embeddings"].shape == (len(keys), 16) and h5["embeddings"].dtype == np.float32
    assert {f"{k}/{c}" for k, c in in_process.known} == set(keys)


def test_a_file_from_another_encoder_or_precision_is_computed_again(reference, speech, encoder_run, tmp_path):
    path = tmp_path / CACHE_FILE
    cached(speech, reference, path, precision="fp32")
    other_precision = Counting(speech)
    cached(other_precision, reference, path, precision="bf16")
    assert other_precision.seen > 0
    retrained = load_encoders(encoder_run)[0].speech.eval()
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    other_encoder = Counting(retrained)
    table = cached(other_encoder, reference, path, precision="bf16")
    assert other_encoder.seen > 0
    batch = next(iter(make_loader(reference, LoaderConfig(batch_size=3))))
    with torch.no_grad():
        torch.testing.assert_close(table(batch), retrained(batch["mel"], batch["mel_lengths"]))
    again = Counting(retrained)
    cached(again, reference, path, precision="bf16")
    assert again.seen == 0  # the file now holds the new encoder's table


def test_a_torn_file_is_computed_again(reference, speech, tmp_path):
    path = tmp_path / CACHE_FILE
    path.write_bytes(b"not an hdf5 file")
    counting = Counting(speech)
    cached(counting, reference, path)
    assert counting.seen > 0 and h5py.is_hdf5(path)


def test_other_ranks_wait_for_the_main_rank_file_and_never_embed(reference, speech, tmp_path, monkeypatch):
    monkeypatch.setattr(speech_cache, "_POLL_SECONDS", 0.05)
    path = tmp_path / CACHE_FILE
    waiting, got = Counting(speech), {}
    thread = threading.Thread(target=lambda: got.update(table=cached(waiting, reference, path, writer=False)))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and not path.exists()  # nothing to read yet: it waits
    main = cached(Counting(speech), reference, path)
    thread.join(30)
    assert not thread.is_alive() and waiting.seen == 0
    batch = next(iter(make_loader(reference, LoaderConfig(batch_size=3))))
    assert torch.equal(got["table"](batch), main(batch))


def test_a_gan_run_writes_the_cache_and_its_resume_reuses_it(reference, encoder_run, tmp_path, monkeypatch):
    from conftest import GAN

    from s2ikit.training.gan import train_gan

    run = tmp_path / "gan"
    computed = []
    original = SpeechEmbeddings._compute_rows
    monkeypatch.setattr(SpeechEmbeddings, "_compute_rows", lambda *a: computed.append(1) or original(*a))
    train_gan(reference, encoder_run, run, GAN, max_steps=1, log=lambda s: None)
    assert (run / CACHE_FILE).is_file() and computed == [1]
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    assert computed == [1]  # the resumed run read the file
