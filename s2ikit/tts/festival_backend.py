"""Festival backend: Edinburgh's Festival through Debian's `text2wave` program (X11-style licence), with the
Debian voice packages festvox-kallpc16k (kal), festvox-kdlpc16k (ked) and festvox-us-slt-hts (slt).

Speaking rate scales the voice's own Duration_Stretch (diphone voices) or sets the HTS engine's speed (-r);
pitch scales the diphone voices' target f0 mean and spread (the HTS voice has no pitch setting in Festival).
Each caption starts Festival afresh (about half a second), which the speech cache pays only once.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, VoiceInfo, register_backend, unsupported
from s2ikit.tts.programs import digest_files, find_program, program_output, speak_to_wav
from s2ikit.utils.errors import UserError

PROGRAM = "text2wave"
VOICE_ROOT = Path("/usr/share/festival/voices")  # where Debian's festvox-* packages put their voices
INSTALL = "run `make voices` (apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)"
DIPHONE = frozenset({"length_scale", "pitch"})
HTS = frozenset({"length_scale"})
# voice -> (folder under VOICE_ROOT, sex, accent, controls, sample rate)
VOICES = {
    "kal_diphone": ("english/kal_diphone", "male", "US", DIPHONE, 16000),
    "ked_diphone": ("english/ked_diphone", "male", "US", DIPHONE, 16000),
    "cmu_us_slt_arctic_hts": ("us/cmu_us_slt_arctic_hts", "female", "US", HTS, 32000),
}


def _probe() -> str | None:
    return None if find_program(PROGRAM) and find_program("festival") else f"festival is not installed: {INSTALL}"


def installed() -> tuple[str, ...]:
    return tuple(v for v in VOICES if (VOICE_ROOT / VOICES[v][0]).is_dir())


def version() -> str:
    match = re.search(r"System:\s*(\S+?):", program_output(["festival", "--version"]))
    return match.group(1) if match else "unknown"


def setup_expression(voice: str, params: SynthesisParams) -> str:
    """The Scheme that selects the voice and applies the prosody, for text2wave's -eval."""
    steps = [f"(voice_{voice})"]
    if VOICES[voice][0].endswith("_hts"):
        # hts_engine's -r is a speed: 2 speaks twice as fast, so it is the inverse of a length scale.
        speed = f'(list "-r" {1 / params.length_scale!r})'
        steps.append(f"(set! hts_engine_params (append hts_engine_params (list {speed})))")
        return f"(begin {' '.join(steps)})"
    steps.append(f"(Parameter.set 'Duration_Stretch (* {params.length_scale!r} (Parameter.get 'Duration_Stretch)))")
    if params.pitch != 1.0:
        # Entries put in front shadow the voice's own: assoc finds the first.
        for key in ("target_f0_mean", "target_f0_std"):
            scaled = f"(* {params.pitch!r} (cadr (assoc '{key} int_lr_params)))"
            steps.append(f"(set! int_lr_params (cons (list '{key} {scaled}) int_lr_params))")
    return f"(begin {' '.join(steps)})"


class FestivalBackend:
    name = "festival"

    def __init__(self, config: TTSConfig):
        self.voice = config.voice
        if self.voice not in installed():
            known = ", ".join(installed()) or "none"
            raise UserError(f"tts.voice {self.voice}: no such Festival voice here (installed: {known}); {INSTALL}")
        folder, _, _, self.controls, self.sample_rate = VOICES[self.voice]
        files = sorted(p for p in (VOICE_ROOT / folder).rglob("*") if p.is_file())
        self.voice_id = f"festival:{self.voice}:{version()}:{digest_files(files)}"

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        if bad := unsupported(params, self.controls):
            raise ValueError(f"festival voice {self.voice} has no control for {', '.join(bad)}")
        argv = [PROGRAM, "-eval", setup_expression(self.voice, params), "-o", "{wav}", "{text}"]
        audio, rate = speak_to_wav(argv, text, f"festival ({self.voice})")
        if rate != self.sample_rate:
            raise ValueError(f"festival voice {self.voice} wrote {rate} Hz, expected {self.sample_rate}")
        return audio


def list_voices() -> list[VoiceInfo]:
    return [VoiceInfo(f"festival:{v}", VOICES[v][1], VOICES[v][2], VOICES[v][3]) for v in installed()]


@register_backend("festival", _probe, list_voices)
def _make(config: TTSConfig) -> FestivalBackend:
    return FestivalBackend(config)
