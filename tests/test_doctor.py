"""`s2ikit doctor` on the standard weight files: verified, fetched on first use from where, or offline."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.doctor import weight_checks
from s2ikit.models import weights

runner = CliRunner()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no phrase is folded across lines
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def row(entry: weights.WeightFile) -> str:
    """The doctor's line for one file: its status, detail and what to do."""
    check = next(c for c in weight_checks() if c.name == entry.what)
    return f"{'ok' if check.ok else 'missing'} | {check.detail} | {check.fix}"


def test_doctor_says_where_missing_weights_come_from(hub, monkeypatch):
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0 and result.output.count("fetched on first use") == 2, result.output
    for entry in weights.STANDARD.values():
        assert entry.what in result.output
        assert row(entry).startswith(f"ok | not in {hub} yet: fetched on first use from {entry.base_url}/{entry.name}")
    monkeypatch.setenv(weights.MIRROR_ENV, "http://mirror.example/w")
    fidelity = weights.STANDARD["fidelity_inception"]
    assert f"http://mirror.example/w/{fidelity.name}" in row(fidelity)


def test_doctor_reports_offline_as_missing_with_what_to_do(hub, monkeypatch):
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    assert runner.invoke(app, ["doctor"]).output.count("missing") >= 2
    for entry in weights.STANDARD.values():
        line = row(entry)
        assert line.startswith("missing") and "S2IKIT_OFFLINE is set" in line and "s2ikit download-weights" in line
        assert f"{entry.base_url}/{entry.name}" in line


def test_doctor_verifies_cached_files_against_their_names(hub, monkeypatch):
    body = b"weights"
    name = f"inception_v3_google-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    real = weights.STANDARD["inception_v3"]
    monkeypatch.setitem(
        weights.STANDARD, "inception_v3", weights.WeightFile(name, real.base_url, real.what, real.patterns)
    )
    hub.mkdir(parents=True)
    (hub / name).write_bytes(body)
    (hub / weights.STANDARD["fidelity_inception"].name).write_bytes(b"not the real file")
    assert row(real).startswith(f"ok | {hub / name} (sha256 verified)")
    damaged = row(weights.STANDARD["fidelity_inception"])
    assert (
        damaged.startswith("missing") and "sha256 does not match its name" in damaged and "download-weights" in damaged
    )


def test_doctor_lists_each_tts_engine_with_its_voices_or_how_to_install_it(monkeypatch, tmp_path):
    from s2ikit.doctor import tts_checks
    from s2ikit.tts import available_backends

    present = {c.name: c for c in tts_checks(available_backends())}
    for engine in ("espeak-ng", "flite", "festival"):
        check = present[f"TTS backend '{engine}'"]
        assert check.ok == (available_backends()[engine] is None)
        if check.ok:
            assert "voice(s):" in check.detail
    if present["TTS backend 'flite'"].ok:
        assert "slt" in present["TTS backend 'flite'"].detail
    monkeypatch.setenv("PATH", str(tmp_path))  # as on a machine where `make voices` never ran
    absent = {c.name: c for c in tts_checks(available_backends())}
    for engine in ("espeak-ng", "flite", "festival"):
        check = absent[f"TTS backend '{engine}'"]
        assert not check.ok and "make voices" in check.fix and "apt-get install" in check.fix
