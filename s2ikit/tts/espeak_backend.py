"""eSpeak NG backend: formant synthesis through Debian's `espeak-ng` program (GPL-3.0, run as a program).

A voice is `LANGUAGE[+VARIANT]`: an English accent (en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-029, ...)
and optionally one of espeak-ng's variants (m1..m7, f1..f5, klatt, ...), which change sex, pitch range and
voice quality. Speaking rate and pitch are espeak-ng's own -s (words per minute) and -p (0-99) settings.
The library that PyPI's espeakng-loader bundles is not used: one process speaking several captions in a row
does not give the same audio twice (its pitch flutter keeps running), and a fresh program per caption does.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, VoiceInfo, register_backend, unsupported
from s2ikit.tts.programs import digest_files, find_program, program_output, speak_to_wav
from s2ikit.utils.errors import UserError

PROGRAM = "espeak-ng"
INSTALL = "run `make voices` (apt-get install espeak-ng)"
CONTROLS = frozenset({"length_scale", "pitch"})
DEFAULT_RATE = 175  # words per minute at length_scale 1 (espeak-ng's default)
# -p 50 is the voice's own pitch; measured on en-us and en-us+f3, 6 steps of -p are about one semitone
# (-p 32 / 68: x0.84 / x1.19 of the median f0), so pitch p maps to 50 + 72 * log2(p).
PITCH_STEPS_PER_OCTAVE = 72
# espeak-ng's own accent names, in the words the other engines' voices use
ACCENTS = {
    "America": "US",
    "America, New York City": "US (New York City)",
    "Great Britain": "British",
    "Scotland": "Scottish",
}


def _probe() -> str | None:
    return None if find_program(PROGRAM) else f"{PROGRAM} is not installed: {INSTALL}"


@cache
def _installation() -> tuple[str, Path]:
    """(version, data folder), from `espeak-ng --version`."""
    text = program_output([PROGRAM, "--version"])
    match = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(\S+)", text)
    if not match:
        raise UserError(f"{PROGRAM} --version says nothing usable ({text.strip()[:80]!r}): {INSTALL}")
    return match.group(1), Path(match.group(2))


@cache
def languages() -> dict[str, tuple[str, str]]:
    """English voice name -> (file under lang/, accent), for the voices espeak-ng speaks by itself (the
    mb/ ones need MBROLA, which Debian does not ship in main)."""
    found = {}
    for line in program_output([PROGRAM, "--voices=en"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or not cols[4].startswith("gmw/"):
            continue
        accent = re.sub(r"^English_\((.*)\)$", r"\1", cols[3]).replace("_", " ")
        accent = ACCENTS.get(accent, accent)
        for name in (cols[1].lower(), Path(cols[4]).name.lower()):
            found.setdefault(name, (cols[4], accent))
    return found


def variants() -> dict[str, str]:
    """Variant name -> sex ("female", "male" or ""), from espeak-ng's voices/!v files."""
    folder = _installation()[1] / "voices" / "!v"
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = re.search(r"^\s*gender\s+(\w+)", path.read_text(errors="replace"), re.MULTILINE)
        found[path.name] = match.group(1) if match and match.group(1) in ("female", "male") else ""
    return found


def voice_files(voice: str) -> list[Path]:
    """The data files that shape this voice's audio; a one-line error names what is missing."""
    language, _, variant = voice.partition("+")
    known = languages()
    if language.lower() not in known:
        names = ", ".join(sorted(known))
        raise UserError(f"tts.voice {voice}: espeak-ng has no English voice {language!r} (known: {names}); {INSTALL}")
    data = _installation()[1]
    files = [data / n for n in ("phontab", "phonindex", "phondata", "intonations", "en_dict")]
    files.append(data / "lang" / known[language.lower()][0])
    if variant:
        if variant not in variants():
            raise UserError(f"tts.voice {voice}: espeak-ng has no variant {variant!r} (e.g. m1..m7, f1..f5, klatt)")
        files.append(data / "voices" / "!v" / variant)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"tts.voice {voice}: espeak-ng's data is incomplete ({missing[0]} is missing): {INSTALL}")
    return files


def pitch_setting(pitch: float) -> int:
    return min(99, max(0, round(50 + PITCH_STEPS_PER_OCTAVE * math.log2(pitch))))


def rate_setting(length_scale: float) -> int:
    return max(80, round(DEFAULT_RATE / length_scale))  # espeak-ng's slowest rate is 80 wpm


class EspeakBackend:
    name = "espeak-ng"
    controls = CONTROLS

    def __init__(self, config: TTSConfig):
        self.voice = config.voice
        version = _installation()[0]
        self.voice_id = f"espeak-ng:{self.voice}:{version}:{digest_files(voice_files(self.voice))}"
        self.sample_rate = 22050  # espeak-ng's only output rate

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        if bad := unsupported(params, self.controls):
            raise ValueError(f"espeak-ng has no control for {', '.join(bad)}")
        argv = [PROGRAM, "-v", self.voice, "-s", str(rate_setting(params.length_scale))]
        argv += ["-p", str(pitch_setting(params.pitch)), "-b", "1", "-f", "{text}", "-w", "{wav}"]
        audio, rate = speak_to_wav(argv, text, f"espeak-ng ({self.voice})")
        if rate != self.sample_rate:
            raise ValueError(f"espeak-ng wrote {rate} Hz, expected {self.sample_rate}")
        return audio


def list_voices() -> list[VoiceInfo]:
    """Each English accent as espeak-ng's default (male) voice, then en-us with every variant."""
    accents = {}
    for name, (file, accent) in languages().items():
        accents.setdefault(file, (name, accent))  # one name per voice file: the language column's
    voices = [VoiceInfo(f"espeak-ng:{name}", "male", accent, CONTROLS) for name, accent in sorted(accents.values())]
    for variant, sex in variants().items():
        voices.append(VoiceInfo(f"espeak-ng:en-us+{variant}", sex, languages().get("en-us", ("", "US"))[1], CONTROLS))
    return voices


@register_backend(PROGRAM, _probe, list_voices)
def _make(config: TTSConfig) -> EspeakBackend:
    return EspeakBackend(config)
