"""Tacotron 2 through Coqui TTS (`--tts coqui`), with random-weight Tacotron 2 + HiFiGAN saved as Coqui models.

Nothing of Coqui is mocked: the real classes build, save, load and run the models. They need coqui-tts and its
torch 2.11 stack, so these tests run in their own environment (`make test-coqui`) and are skipped elsewhere.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from s2ikit.audio.codec import decode_flac
from s2ikit.cli import app
from s2ikit.config import TTSConfig
from s2ikit.tts import SynthesisParams, available_backends, load_backend
from s2ikit.utils.errors import UserError

pytestmark = pytest.mark.coqui
pytest.importorskip("TTS", reason="coqui-tts is not installed here; `make test-coqui` runs this in .venv-coqui")

MODEL = "tts_models--en--ljspeech--tacotron2-DDC"  # the folder names Coqui gives the default models
VOCODER = "vocoder_models--en--ljspeech--hifigan_v2"
# 2 colours x 2 shapes x 1 size, 2 images each, 2 captions each: 16 captions; features at 16 kHz, so the
# Tacotron 2 audio (22,050 Hz) must be resampled on its way into the shards.
TINY = [
    *("--images-per-class", "2", "--image-size", "16"),
    *("--set", "shapes.colours=red,blue", "--set", "shapes.shapes=circle,square", "--set", "shapes.sizes=small"),
    *("--set", "shapes.captions_per_image=2", "--set", "shapes.test_fraction=0.5", "--set", "prepare.shard_size=2"),
    *("--set", "tts.length_scales=1.0", "--set", "features.sample_rate=16000"),
]


@pytest.fixture(scope="module")
def tts_home(tmp_path_factory) -> Path:
    """A $TTS_HOME pre-seeded, as a user would for offline use, with random-weight models under Coqui's names."""
    import torch
    from TTS.tts.configs.tacotron2_config import Tacotron2Config
    from TTS.tts.models.tacotron2 import Tacotron2
    from TTS.vocoder.configs.hifigan_config import HifiganConfig
    from TTS.vocoder.models import setup_model

    home = tmp_path_factory.mktemp("tts-home")
    torch.manual_seed(0)
    # Characters, not phonemes: no espeak-ng needed. Dropout at inference on, as in the models it stands in for,
    # so determinism comes from s2ikit's per-utterance seed. max_decoder_steps bounds untrained decoding.
    taco_config = Tacotron2Config(
        use_phonemes=False,
        text_cleaner="basic_cleaners",
        r=2,
        max_decoder_steps=60,
        prenet_dropout_at_inference=True,
    )
    # A narrow HiFiGAN whose upsampling (8 x 8 x 4) still matches the 256-sample hop of the mel frames.
    generator = {
        "upsample_factors": [8, 8, 4],
        "upsample_kernel_sizes": [16, 16, 8],
        "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "resblock_type": "1",
    }
    vocoder_config = HifiganConfig(generator_model_params=generator)
    for name, config, model in (
        (MODEL, taco_config, Tacotron2(taco_config)),
        (VOCODER, vocoder_config, setup_model(vocoder_config)),
    ):
        folder = home / "tts" / name
        folder.mkdir(parents=True)
        torch.save({"model": model.state_dict()}, folder / "model_file.pth")
        config.save_json(str(folder / "config.json"))
    return home


@pytest.fixture()
def offline_home(tts_home, monkeypatch) -> Path:
    monkeypatch.setenv("TTS_HOME", str(tts_home))
    return tts_home


def test_coqui_is_registered_and_usable_here():
    assert available_backends()["coqui"] is None


def test_prepare_through_coqui_uses_the_cache_on_rerun(offline_home, tmp_path):
    runner, cache = CliRunner(), tmp_path / "cache"
    args = ["prepare", "shapes", "--tts", "coqui", "--cache-dir", str(cache), *TINY]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    dataset = json.loads((tmp_path / "a/dataset.json").read_text())
    assert dataset["failures"] == 0
    assert dataset["splits"]["train"]["captions"] + dataset["splits"]["test"]["captions"] == 16
    shards = sorted((tmp_path / "a/shards").rglob("*.tar"))
    captions = 0
    for path in shards:
        with tarfile.open(path) as tar:
            members = {name: tar.extractfile(name).read() for name in tar.getnames()}
        for name, data in members.items():
            if name.endswith(".flac"):
                pcm, rate = decode_flac(data)
                mel = np.load(io.BytesIO(members[name.replace(".flac", ".npy")]))
                assert rate == 16000 and pcm.size > 0 and mel.shape[1] == 40
                captions += 1
    assert captions == 16
    entries = {p: p.stat().st_mtime_ns for p in (cache / "tts").rglob("*.flac")}
    assert 0 < len(entries) <= 16  # shapes captions repeat: one entry per distinct sentence

    # Same captions, new output folder, same cache: everything comes from the cache, nothing is re-synthesized.
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    assert {p: p.stat().st_mtime_ns for p in (cache / "tts").rglob("*.flac")} == entries
    for path in shards:
        assert (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes() == path.read_bytes()


def test_same_caption_same_audio_in_separate_backends_whatever_came_before(offline_home):
    by_name = load_backend(TTSConfig(backend="coqui"))
    by_path = load_backend(
        TTSConfig(
            backend="coqui",
            coqui_model=str(offline_home / "tts" / MODEL),
            coqui_vocoder=str(offline_home / "tts" / VOCODER),
        )
    )
    assert by_name.sample_rate == 22050 and by_name.voice_id == by_path.voice_id
    first = by_name.synthesize("a small red circle", SynthesisParams())
    by_path.synthesize("something else entirely", SynthesisParams())
    again = by_path.synthesize("a small red circle", SynthesisParams())
    assert first.dtype == np.float32 and first.size > 0 and np.abs(first).max() <= 1.0
    np.testing.assert_array_equal(first, again)
    # The model itself is stochastic (prenet dropout at inference): the per-utterance seed is what fixes it.
    runs = [np.asarray(by_name._synth.tts("a small red circle"), dtype=np.float32) for _ in range(2)]
    assert runs[0].shape != runs[1].shape or not np.array_equal(*runs)


def test_length_scale_stretches_the_waveform(offline_home):
    backend = load_backend(TTSConfig(backend="coqui"))
    normal = backend.synthesize("a large blue square", SynthesisParams())
    slow = backend.synthesize("a large blue square", SynthesisParams(length_scale=1.25))
    assert abs(len(slow) / len(normal) - 1.25) < 0.02


def test_missing_model_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TTS_HOME", str(tmp_path / "empty"))
    with pytest.raises(UserError) as error:
        load_backend(TTSConfig(backend="coqui"))
    message = str(error.value)
    assert "\n" not in message and "nothing is downloaded" in message
    assert str(tmp_path / "empty" / "tts" / MODEL) in message
    assert not (tmp_path / "empty").exists()  # Coqui never started a download


def test_piper_noise_settings_are_refused(offline_home):
    with pytest.raises(UserError, match="noise_scale"):
        load_backend(TTSConfig(backend="coqui", noise_scale=0.3))
