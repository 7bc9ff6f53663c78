import pytest

from s2ikit.config import load_preset, parse_overrides
from s2ikit.utils.errors import UserError


def test_shapes_preset_loads_with_s2igan_features():
    preset = load_preset("shapes")
    assert (preset.features.n_mels, preset.features.n_fft, preset.features.hop_length) == (40, 551, 220)
    assert preset.tts.length_scales == (0.9, 1.1)
    assert preset.prepare.image_size == 64


def test_overrides_are_typed():
    preset = load_preset("shapes", parse_overrides(["tts.noise_scale=0.3", "prepare.image_size=128"]))
    assert preset.tts.noise_scale == 0.3
    assert preset.prepare.image_size == 128


def test_unknown_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[prepare]\nimage_sise = 64\n")
    with pytest.raises(UserError, match=r"mine\.toml \[prepare\]: unknown key 'image_sise'"):
        load_preset(str(path))


def test_unknown_section_and_bad_value():
    with pytest.raises(UserError, match=r"unknown section \[gann\]"):
        load_preset("shapes", {"gann": {"lr": "1"}})
    with pytest.raises(UserError, match="image_size: expected int, got 'big'"):
        load_preset("shapes", parse_overrides(["prepare.image_size=big"]))
    with pytest.raises(UserError, match="SECTION.KEY=VALUE"):
        parse_overrides(["noise_scale=0.3"])


def test_missing_preset_lists_known_ones():
    with pytest.raises(UserError, match="known: .*shapes"):
        load_preset("no-such-preset")
