"""The per-unit steps of preparation. Each reads its inputs, writes one output file atomically and returns
how many items it produced and which failed (a failure is recorded, never fatal).

speech:   captions -> 16-bit FLAC at the feature rate (TTS through the cache, or recorded audio); with several
          voices (`tts.voices`), also who spoke each caption and how
features: waveforms -> log-mel (T, n_mels)
images:   records -> encoded images at the preset size
shards:   all of the above -> one WebDataset tar, written deterministically
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from s2ikit.audio.codec import decode_flac, encode_flac, from_int16, load_audio, resample, to_int16
from s2ikit.audio.features import log_mel
from s2ikit.audio.rooms import reverberate
from s2ikit.config import Preset, as_dict
from s2ikit.data.records import Record
from s2ikit.data.shards import ShardWriter, SpokenCaption
from s2ikit.data.sources import Source, get_source
from s2ikit.data.sources.layout import file_stamps
from s2ikit.preparation.plan import Unit
from s2ikit.tts import SynthesisParams, TTSBackend, load_backend, load_voice, voice_spec
from s2ikit.tts.cache import SpeechCache
from s2ikit.tts.formants import shift_formants
from s2ikit.utils.atomic import atomic_path, write_bytes
from s2ikit.utils.errors import SampleError, UserError
from s2ikit.utils.seeds import derive_seed

Tick = Callable[[str, int], None]


@dataclass(frozen=True)
class PrepareContext:
    """Everything a step needs; picklable, so worker processes rebuild their resources from it."""

    out: Path
    dataset: str
    preset: Preset
    root: Path | None
    cache_dir: Path


class Resources:
    """Per-process heavy objects, built on first use (a worker that finds everything cached loads no TTS)."""

    def __init__(self, ctx: PrepareContext):
        self.ctx = ctx
        self._voices: dict[str, TTSBackend] = {}

    @cached_property
    def source(self) -> Source:
        return get_source(self.ctx.dataset, self.ctx.preset, self.ctx.root)

    def voice(self, spec: str) -> TTSBackend:
        """The backend that speaks the voice `spec` (ENGINE:VOICE), built when it first speaks."""
        if spec not in self._voices:
            tts = self.ctx.preset.tts
            if not tts.voices:
                self._voices[spec] = load_backend(tts)
            else:
                # Noise is asked for per utterance, and only of the voices that have it (`spoken_params`).
                base = dataclasses.replace(
                    tts, voices=(), formant_shifts=(1.0,), rooms=(0.0,), noise_scale=0.0, noise_w=0.0
                )
                try:
                    self._voices[spec] = load_voice(spec, base)
                except UserError as e:
                    raise UserError(f"tts.voices: {e}") from None
        return self._voices[spec]

    @cached_property
    def cache(self) -> SpeechCache:
        return SpeechCache(self.ctx.cache_dir)


@dataclass
class StepResult:
    ok: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, step: str, key: str, caption: int | None, error: str) -> None:
        self.failures.append({"step": step, "key": key, "caption": caption, "error": error})


def caption_id(key: str, index: int) -> str:
    return f"{key}__{index:02d}"


def synthesis_params(preset: Preset, key: str, index: int) -> SynthesisParams:
    """Speaking rate and pitch for one caption, from seeded hashes: stable across reruns, varied across captions.
    Each value has its own hash, so adding pitches or voices leaves every caption's rate as it was."""
    tts, seed = preset.tts, preset.prepare.seed
    scale = tts.length_scales[derive_seed(seed, "prepare/speaking_rate", key, index) % len(tts.length_scales)]
    pitch = tts.pitches[derive_seed(seed, f"tts/pitch/{key}", index) % len(tts.pitches)]
    return SynthesisParams(length_scale=scale, noise_scale=tts.noise_scale, noise_w=tts.noise_w, pitch=pitch)


def caption_voice(preset: Preset, key: str, index: int) -> str:
    """Who speaks one caption (ENGINE:VOICE): one of `tts.voices` by a seeded hash, else the single voice."""
    tts = preset.tts
    if not tts.voices:
        return voice_spec(tts)
    return tts.voices[derive_seed(preset.prepare.seed, f"tts/voice/{key}", index) % len(tts.voices)]


def caption_formant_shift(preset: Preset, key: str, index: int) -> float:
    """The formant ratio one caption is spoken with: one of `tts.formant_shifts` by its own seeded hash."""
    shifts = preset.tts.formant_shifts
    return shifts[derive_seed(preset.prepare.seed, f"tts/formant/{key}", index) % len(shifts)]


def caption_room(preset: Preset, key: str, index: int) -> tuple[float, float]:
    """The room one caption is heard in, (RT60 s, DRR dB): one of `tts.rooms` and of `tts.room_drrs` by their
    own seeded hashes; (0, 0) for a dry caption."""
    tts, seed = preset.tts, preset.prepare.seed
    rt60 = tts.rooms[derive_seed(seed, f"tts/room/{key}", index) % len(tts.rooms)]
    if rt60 == 0:
        return 0.0, 0.0
    return rt60, tts.room_drrs[derive_seed(seed, f"tts/room-drr/{key}", index) % len(tts.room_drrs)]


def spoken_params(params: SynthesisParams, controls: frozenset[str]) -> SynthesisParams:
    """`params` with each setting the voice has no control for back at its neutral value: a voice without a
    pitch control speaks at its own pitch rather than failing the caption."""
    neutral = SynthesisParams()
    fields = (f.name for f in dataclasses.fields(SynthesisParams))
    return dataclasses.replace(params, **{f: getattr(neutral, f) for f in fields if f not in controls})


@dataclass(frozen=True)
class Speaker:
    """Who spoke one caption and with which prosody; recorded in the shard when the data set has several voices."""

    voice: str  # ENGINE:VOICE
    params: SynthesisParams  # as spoken (after `spoken_params`)
    formant_shift: float = 1.0  # the formants moved by this ratio after synthesis (`tts.formant_shifts`)
    room: tuple[float, float] = (0.0, 0.0)  # (RT60 s, DRR dB) of the room it was heard in (`tts.rooms`); 0 = dry


SPEAKERS = "__speakers__"  # the speech npz's member holding {caption id: speaker}, as UTF-8 JSON


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Built in memory, then written in one go: a failing write (a full disk) then leaves no half-closed zip
    # behind to fail again when it is garbage-collected.
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue(), durable=False)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def run_speech(res: Resources, unit: Unit, inputs: dict[str, Path], output: Path, tick: Tick) -> StepResult:
    preset, result, waves, speakers = res.ctx.preset, StepResult(), {}, {}
    rate = preset.features.sample_rate
    for record in unit.records:
        for i, caption in enumerate(record.captions):
            try:
                cid = caption_id(record.key, i)
                if caption.audio is not None:
                    audio = load_audio(Path(res.ctx.root or "") / caption.audio, rate)
                else:
                    pcm, pcm_rate, speakers[cid] = _synthesize(res, record, i)
                    audio = resample(from_int16(pcm), pcm_rate, rate)
                if audio.size == 0:
                    raise SampleError("no audio")
                flac = encode_flac(to_int16(audio), rate)
                waves[cid] = np.frombuffer(flac, dtype=np.uint8)
                result.ok += 1
            except SampleError as e:
                result.fail("speech", record.key, i, str(e))
        tick("speech", 1)
    if preset.tts.voices:  # a single voice is the data set's (dataset.json), so its shards stay as they were
        spoken = {cid: speaker_json(s) for cid, s in speakers.items() if cid in waves}
        waves[SPEAKERS] = np.frombuffer(json.dumps(spoken, sort_keys=True).encode(), dtype=np.uint8)
    _save_npz(output, waves)
    return result


def speaker_json(speaker: Speaker) -> dict[str, Any]:
    meta = {"voice": speaker.voice, "length_scale": speaker.params.length_scale, "pitch": speaker.params.pitch}
    if speaker.formant_shift != 1.0:  # absent at 1.0, so data sets prepared without formant shifts read as before
        meta["formant_shift"] = speaker.formant_shift
    if speaker.room[0] != 0.0:  # absent when dry, likewise
        meta["room_rt60"], meta["room_drr_db"] = speaker.room
    return meta


def _synthesize(res: Resources, record: Record, index: int) -> tuple[np.ndarray, int, Speaker]:
    """int16 samples at the voice's rate, from the cache or the TTS (then cached), and who spoke them."""
    text = record.captions[index].text.strip()
    if not text:
        raise SampleError("empty caption")
    if "\x00" in text:  # what a UTF-16 caption file decoded as UTF-8 looks like; no TTS can speak it
        raise SampleError("caption holds NUL characters (a caption file that is not UTF-8?)")
    spec = caption_voice(res.ctx.preset, record.key, index)
    tts = res.voice(spec)
    params = spoken_params(synthesis_params(res.ctx.preset, record.key, index), tts.controls)
    preset = res.ctx.preset
    speaker = Speaker(
        spec, params, caption_formant_shift(preset, record.key, index), caption_room(preset, record.key, index)
    )
    key = res.cache.key(tts.voice_id, text, params)
    hit = res.cache.get(key)
    if hit is not None:
        pcm, rate = hit
    else:
        try:
            pcm, rate = to_int16(tts.synthesize(text, params)), tts.sample_rate
        except SampleError:
            raise
        except Exception as e:  # a backend failing on one sentence must not stop the run
            raise SampleError(f"TTS failed: {type(e).__name__}: {e}") from None
        res.cache.put(key, pcm, rate)  # the voice's own output: every formant shift of it reuses the entry
    if speaker.formant_shift != 1.0:
        seed = derive_seed(res.ctx.preset.prepare.seed, "tts/formant-psola", record.key, index)
        try:
            pcm = to_int16(shift_formants(from_int16(pcm), rate, speaker.formant_shift, seed))
        except UserError:
            raise
        except Exception as e:  # Praat failing on one utterance (no voiced frame) must not stop the run
            raise SampleError(f"formant shift failed: {type(e).__name__}: {e}") from None
    if speaker.room[0] != 0.0:
        seed = derive_seed(preset.prepare.seed, "tts/room-impulse", record.key, index)
        pcm = to_int16(reverberate(from_int16(pcm), rate, *speaker.room, seed))
    return pcm, rate, speaker


def run_features(res: Resources, unit: Unit, inputs: dict[str, Path], output: Path, tick: Tick) -> StepResult:
    config, result, feats = res.ctx.preset.features, StepResult(), {}
    waves = _load_npz(inputs["speech"])
    for record in unit.records:
        for i in range(len(record.captions)):
            cid = caption_id(record.key, i)
            if cid not in waves:
                continue  # already recorded as a speech failure
            try:
                pcm, _ = decode_flac(waves[cid].tobytes())
                feats[cid] = log_mel(from_int16(pcm), config)
                result.ok += 1
            except SampleError as e:
                result.fail("features", record.key, i, str(e))
        tick("features", 1)
    _save_npz(output, feats)
    return result


def run_images(res: Resources, unit: Unit, inputs: dict[str, Path], output: Path, tick: Tick) -> StepResult:
    config, result, images = res.ctx.preset.prepare, StepResult(), {}
    for record in unit.records:
        try:
            image = res.source.load_image(record, config.image_size)
            buf = io.BytesIO()
            if config.image_format == "png":
                image.save(buf, format="PNG")
            else:
                image.save(buf, format="JPEG", quality=config.jpeg_quality)
            images[record.key] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
            result.ok += 1
        except SampleError as e:
            result.fail("images", record.key, None, str(e))
        tick("images", 1)
    _save_npz(output, images)
    return result


def run_shards(res: Resources, unit: Unit, inputs: dict[str, Path], output: Path, tick: Tick) -> StepResult:
    ctx, result = res.ctx, StepResult()
    ext = ctx.preset.prepare.image_format
    waves, feats, images = (_load_npz(inputs[k]) for k in ("speech", "features", "images"))
    speakers = json.loads(waves[SPEAKERS].tobytes()) if SPEAKERS in waves else {}
    with atomic_path(output) as tmp, open(tmp, "wb") as f:
        writer = ShardWriter(f)
        for record in unit.records:
            tick("shards", 1)
            if record.key not in images:
                continue  # image failure already recorded
            captions = [
                SpokenCaption(i, caption.text, waves[cid].tobytes(), feats[cid], **speakers.get(cid, {}))
                for i, caption in enumerate(record.captions)
                if (cid := caption_id(record.key, i)) in feats
            ]
            if not captions:
                result.fail("shards", record.key, None, "no usable caption: sample left out")
                continue
            writer.write(record, ctx.dataset, ext, images[record.key].tobytes(), captions)
            result.ok += 1
        writer.close()
    return result


@dataclass(frozen=True)
class Step:
    """A node of the preparation DAG: its inputs, where its output goes and which settings shape it."""

    name: str
    inputs: tuple[str, ...]  # upstream steps; "records" is the unit's slice of the index
    version: int  # bump when the code's output changes, so old outputs are redone
    settings: Callable[[PrepareContext], dict[str, Any]]
    output: Callable[[Unit], Path]  # relative to the output folder
    run: Callable[[Resources, Unit, dict[str, Path], Path, Tick], StepResult]
    reads: Callable[[Unit], list[str]] = lambda unit: []  # the data set's files it reads, relative to --root


def source_stamps(ctx: PrepareContext, step: Step, unit: Unit) -> dict[str, list[int] | None]:
    """Size and mtime of each data set file `step` reads for `unit`: replacing one (a repaired recording or
    photo) redoes exactly the steps that read it. Keyed by the path below --root, so a moved root redoes
    nothing."""
    return file_stamps(Path(ctx.root or ""), step.reads(unit))


def _recordings(unit: Unit) -> list[str]:
    return [c.audio for r in unit.records for c in r.captions if c.audio is not None]


def _photos(unit: Unit) -> list[str]:
    return [r.image for r in unit.records if r.image]  # "" for generated images


def _work(step: str, ext: str) -> Callable[[Unit], Path]:
    return lambda unit: Path("work") / step / f"{unit.name}.{ext}"


def _speech_settings(ctx: PrepareContext) -> dict[str, Any]:
    tts = {k: v for k, v in as_dict(ctx.preset.tts).items() if k != "threads"}  # threads change speed only
    # Left out at their defaults, so that data sets prepared before these settings existed stay up to date.
    if not ctx.preset.tts.voices:
        del tts["voices"]
    if ctx.preset.tts.pitches == (1.0,):
        del tts["pitches"]
    if ctx.preset.tts.formant_shifts == (1.0,):
        del tts["formant_shifts"]
    if ctx.preset.tts.rooms == (0.0,):  # dry: the DRRs are unused, so they change nothing either
        del tts["rooms"], tts["room_drrs"]
    return {"tts": tts, "seed": ctx.preset.prepare.seed, "sample_rate": ctx.preset.features.sample_rate}


STEPS: tuple[Step, ...] = (
    Step("speech", ("records",), 2, _speech_settings, _work("speech", "npz"), run_speech, _recordings),
    Step("features", ("speech",), 1, lambda ctx: as_dict(ctx.preset.features), _work("features", "npz"), run_features),
    Step(
        "images",
        ("records",),
        1,
        lambda ctx: {
            k: v for k, v in as_dict(ctx.preset.prepare).items() if k in ("image_size", "image_format", "jpeg_quality")
        },
        _work("images", "npz"),
        run_images,
        _photos,
    ),
    Step(
        "shards",
        ("records", "speech", "features", "images"),
        1,
        lambda ctx: {"dataset": ctx.dataset, "sample_rate": ctx.preset.features.sample_rate},
        lambda unit: unit.shard_path,
        run_shards,
    ),
)
STEP_NAMES = ("index",) + tuple(s.name for s in STEPS)
