"""Flite backend: CMU's small synthesizer through Debian's `flite` program (BSD-style licence), with the US
English voices built into Debian's libflite1: kal and kal16 (diphone), awb, rms and slt (clustergen).

Speaking rate is Flite's duration_stretch and pitch its f0_shift (rms ignores f0_shift, so it takes rate only).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, VoiceInfo, register_backend, unsupported
from s2ikit.tts.programs import digest_files, find_program, program_output, speak_to_wav
from s2ikit.utils.errors import UserError

PROGRAM = "flite"
INSTALL = "run `make voices` (apt-get install flite)"
RATE_ONLY = frozenset({"length_scale"})
BOTH = frozenset({"length_scale", "pitch"})
# voice -> (library that holds it, sex, accent, controls, sample rate). awb_time speaks only clock times.
VOICES = {
    "kal": ("cmu_us_kal", "male", "US", BOTH, 8000),
    "kal16": ("cmu_us_kal16", "male", "US", BOTH, 16000),
    "awb": ("cmu_us_awb", "male", "Scottish", BOTH, 16000),
    "rms": ("cmu_us_rms", "male", "US", RATE_ONLY, 16000),
    "slt": ("cmu_us_slt", "female", "US", BOTH, 16000),
}
# The libraries besides the voice's own that shape the audio: the engine, US English text analysis, the lexicon.
SHARED = ("libflite.so", "libflite_usenglish.so", "libflite_cmulex.so")


def _probe() -> str | None:
    return None if find_program(PROGRAM) else f"{PROGRAM} is not installed: {INSTALL}"


@cache
def _libraries() -> dict[str, Path]:
    """Library name without version (libflite_cmu_us_slt.so) -> its file, as the program loads them."""
    found = {}
    for line in program_output(["ldd", find_program(PROGRAM) or PROGRAM]).splitlines():
        match = re.match(r"\s*(libflite\S*\.so)\S*\s+=>\s+(\S+)", line)
        if match:
            found[match.group(1)] = Path(match.group(2))
    return found


@cache
def installed() -> tuple[str, ...]:
    """The voices `flite -lv` lists that s2ikit knows (awb_time is left out)."""
    listed = program_output([PROGRAM, "-lv"]).partition(":")[2].split()
    return tuple(v for v in VOICES if v in listed)


def version() -> str:
    match = re.search(r"version:\s*(\S+)", program_output([PROGRAM, "--version"]))
    return match.group(1) if match else "unknown"


class FliteBackend:
    name = "flite"

    def __init__(self, config: TTSConfig):
        self.voice = config.voice
        if self.voice not in installed():
            known = ", ".join(installed()) or "none"
            raise UserError(f"tts.voice {self.voice}: no such Flite voice here (installed: {known}); {INSTALL}")
        library, _, _, self.controls, self.sample_rate = VOICES[self.voice]
        libraries = _libraries()
        files = [libraries[n] for n in (f"libflite_{library}.so", *SHARED) if n in libraries]
        self.voice_id = f"flite:{self.voice}:{version()}:{digest_files(files)}"

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        if bad := unsupported(params, self.controls):
            raise ValueError(f"flite voice {self.voice} has no control for {', '.join(bad)}")
        argv = [PROGRAM, "-voice", self.voice, "--setf", f"duration_stretch={params.length_scale!r}"]
        if params.pitch != 1.0:
            argv += ["--setf", f"f0_shift={params.pitch!r}"]
        audio, rate = speak_to_wav([*argv, "-f", "{text}", "-o", "{wav}"], text, f"flite ({self.voice})")
        if rate != self.sample_rate:
            raise ValueError(f"flite voice {self.voice} wrote {rate} Hz, expected {self.sample_rate}")
        return audio


def list_voices() -> list[VoiceInfo]:
    return [VoiceInfo(f"flite:{v}", VOICES[v][1], VOICES[v][2], VOICES[v][3]) for v in installed()]


@register_backend(PROGRAM, _probe, list_voices)
def _make(config: TTSConfig) -> FliteBackend:
    return FliteBackend(config)
