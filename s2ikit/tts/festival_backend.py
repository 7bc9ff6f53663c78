"""Festival backend: Edinburgh's Festival through Debian's `text2wave` program (X11-style licence), with the
Debian voice packages festvox-kallpc16k (kal), festvox-kdlpc16k (ked) and festvox-us-slt-hts (slt).

Speaking rate scales the voice's own Duration_Stretch (diphone voices) or sets the HTS engine's speed (-r);
pitch scales the diphone voices' target f0 mean and spread (the HTS voice has no pitch setting in Festival).

Festival's start-up (loading its lexicon and the voice) takes about 0.4 s, its synthesis of a caption about
0.01 s, so each backend keeps one interpreter running (`festival --pipe`) and sends it one Scheme form per
caption. Every form selects the voice first, which resets everything the prosody settings change
(Duration_Stretch, the intonation targets, hts_engine_params), so a caption's samples do not depend on the
captions spoken before it, as with a fresh process.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, VoiceInfo, register_backend, unsupported
from s2ikit.tts.programs import TIMEOUT_S, digest_files, find_program, program_output, read_wav
from s2ikit.utils.errors import SampleError, UserError

PROGRAM = "festival"
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


DONE = b"s2ikit-festival-done"  # printed after each form: the interpreter has finished it
SESSION = "pipe"  # in the voice id: the samples of one interpreter per backend (not text2wave's per caption)


def _probe() -> str | None:
    return None if find_program(PROGRAM) else f"festival is not installed: {INSTALL}"


def installed() -> tuple[str, ...]:
    return tuple(v for v in VOICES if (VOICE_ROOT / VOICES[v][0]).is_dir())


def version() -> str:
    match = re.search(r"System:\s*(\S+?):", program_output(["festival", "--version"]))
    return match.group(1) if match else "unknown"


def scheme_string(text: str) -> str:
    """`text` as a Scheme string literal (backslash and double quote escaped; line breaks are spaces)."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup_expression(voice: str, params: SynthesisParams) -> str:
    """The Scheme that selects the voice (resetting its prosody) and applies the prosody."""
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
        self.voice_id = f"festival:{self.voice}:{version()}:{digest_files(files)}:{SESSION}"
        self.session = Session()

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        if bad := unsupported(params, self.controls):
            raise ValueError(f"festival voice {self.voice} has no control for {', '.join(bad)}")
        with tempfile.TemporaryDirectory(prefix="s2ikit-tts-") as folder:
            wav = Path(folder) / "speech.wav"
            utterance = f"(utt.synth (Utterance Text {scheme_string(text)}))"
            self.session.run(f"(begin {setup_expression(self.voice, params)} "
                             f"(utt.save.wave {utterance} {scheme_string(str(wav))} 'riff))")  # fmt: skip
            if not wav.is_file():
                raise SampleError(f"festival ({self.voice}) wrote no audio for {text!r}: {self.session.last_error()}")
            audio, rate = read_wav(wav.read_bytes(), f"festival ({self.voice})", text)
        if rate != self.sample_rate:
            raise ValueError(f"festival voice {self.voice} wrote {rate} Hz, expected {self.sample_rate}")
        return audio


class Session:
    """One `festival --pipe` interpreter: Scheme forms in on stdin, a marker line out on stdout after each.

    Started on first use and again after a failure; it exits by itself when its stdin closes, so a killed
    worker leaves no Festival behind."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.errors = tempfile.TemporaryFile()  # stderr: read back only to explain a failure
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.errors.seek(0)
            self.errors.truncate()
            self.process = subprocess.Popen(
                [PROGRAM, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors
            )
        return self.process

    def run(self, form: str) -> None:
        """Evaluate `form`; returns when Festival has finished it (SampleError after TIMEOUT_S or if it died)."""
        with self.lock:
            process = self._start()
            try:
                process.stdin.write(f'{form}\n(format t "{DONE.decode()}\\n")\n(fflush nil)\n'.encode())
                process.stdin.flush()
            except BrokenPipeError:
                self.close()
                raise SampleError(f"festival exited: {self.last_error()}") from None
            self._wait(process)

    def _wait(self, process: subprocess.Popen) -> None:
        seen = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while DONE not in seen:
                if not selector.select(timeout=TIMEOUT_S):
                    self.close()
                    raise SampleError(f"festival took over {TIMEOUT_S} s")
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    self.close()
                    raise SampleError(f"festival exited: {self.last_error()}")
                seen = seen[-len(DONE) :] + chunk

    def last_error(self) -> str:
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the pipe closing ends Festival anyway
            pass


def list_voices() -> list[VoiceInfo]:
    return [VoiceInfo(f"festival:{v}", VOICES[v][1], VOICES[v][2], VOICES[v][3]) for v in installed()]


@register_backend("festival", _probe, list_voices)
def _make(config: TTSConfig) -> FestivalBackend:
    return FestivalBackend(config)
