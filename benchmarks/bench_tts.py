"""Synthesis time per caption for each TTS engine installed here, on 20 shapes captions, one voice at a time.

Every voice runs in this one process, interleaved round by round so that load on the machine falls on all of
them alike; each voice's time is its best round. The anchor is the slowest voice of this run: each line gives
how many times faster than it a voice is (the ratio is what carries across machines, not the seconds).
Engines that are not installed are left out, saying so. One more line times `tts.formant_shifts` (Praat's
Change gender at x1.2) on the first voice's audio: the cost a shifted caption adds to its voice's own. The last
line is a preset's mix (`--preset`, the voices overlay by default): the mean time of a caption whose voice is
drawn from its `tts.voices` and formants from its `tts.formant_shifts`, against the same anchor.
Usage: python benchmarks/bench_tts.py [--rounds 3] [--voices espeak-ng:en-us,flite:slt]
"""

from __future__ import annotations

import argparse
import itertools
import time

VOICES = (
    "piper:en_US-joe-medium",
    "espeak-ng:en-us",
    "espeak-ng:en-us+f3",
    "flite:kal",
    "flite:slt",
    "festival:kal_diphone",
    "festival:cmu_us_slt_arctic_hts",
)


def captions(n: int = 20) -> list[str]:
    """Shapes-style captions: size, colour, shape, all different."""
    sizes, colours = ("small", "large"), ("red", "green", "blue", "yellow", "purple")
    shapes = ("circle", "square", "triangle", "star")
    combos = list(itertools.product(sizes, colours, shapes))
    step = max(1, len(combos) // n)
    return [f"a {s} {c} {h}" for s, c, h in combos[::step][:n]]


def formant_shift_job(voices: dict, texts: list[str], params):  # noqa: ANN201 - (name, callable, audio s) | None
    """Praat's formant shift of the first voice's captions, or None (no voice, or praat-parselmouth missing)."""
    from s2ikit.tts.formants import available, shift_formants

    if not voices or not available():
        print(f"{'formant shift':46s} left out: " + ("no voice" if not voices else "praat-parselmouth not installed"))
        return None
    spec, voice = next(iter(voices.items()))
    audios = [voice.synthesize(t, params) for t in texts]
    seconds = sum(len(a) for a in audios) / voice.sample_rate / len(texts)
    return (
        f"+ formant shift x1.2 ({spec})",
        lambda: [shift_formants(a, voice.sample_rate, 1.2, 0) for a in audios],
        seconds,
    )


def main() -> None:
    from s2ikit.tts import SynthesisParams, available_backends, load_voice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all voices; each voice keeps its best")
    parser.add_argument("--voices", default=",".join(VOICES), help="comma-separated ENGINE:VOICE names")
    parser.add_argument("--preset", default="voices", help="the preset whose voice mix the last line prices")
    args = parser.parse_args()

    from s2ikit.config import load_preset

    mix = load_preset(args.preset).tts
    named = list(dict.fromkeys([*args.voices.split(","), *mix.voices]))

    texts, params, usable = captions(), SynthesisParams(), available_backends()
    voices = {}
    for spec in named:
        engine = spec.partition(":")[0]
        if usable.get(engine, "unknown engine") is not None:
            print(f"{spec:46s} left out: {usable.get(engine, 'unknown engine')}")
            continue
        voices[spec] = load_voice(spec)
        voices[spec].synthesize("warm up", params)  # loads the model / pages in the program
    best = {spec: float("inf") for spec in voices}
    audio_s = {}
    shift = formant_shift_job(voices, texts, params)
    for _ in range(args.rounds):
        for spec, voice in voices.items():
            start = time.perf_counter()
            samples = sum(len(voice.synthesize(t, params)) for t in texts)
            best[spec] = min(best[spec], (time.perf_counter() - start) / len(texts))
            audio_s[spec] = samples / voice.sample_rate / len(texts)
        if shift is not None:
            name, run, seconds = shift
            start = time.perf_counter()
            run()
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - start) / len(texts))
            audio_s[name] = seconds
    if not best:
        raise SystemExit("no TTS engine installed (make venv for piper, make voices for the others)")
    anchor = max(best, key=best.get)
    print(f"{len(texts)} captions, best of {args.rounds} rounds; anchor: {anchor} (the slowest)")
    print(f"{'voice':46s} {'s/caption':>10s} {'x anchor':>9s} {'audio s':>8s} {'real-time x':>12s}")
    for spec in sorted(best, key=best.get):
        speed = best[anchor] / best[spec]
        print(f"{spec:46s} {best[spec]:10.3f} {speed:9.1f} {audio_s[spec]:8.2f} {audio_s[spec] / best[spec]:12.1f}")
    spoken = [v for v in mix.voices if v in best]
    if spoken:  # each voice equally likely (seeded hashes), a shifted share of the captions pays the shift
        shifted = sum(r != 1.0 for r in mix.formant_shifts) / len(mix.formant_shifts)
        cost = sum(best[v] for v in spoken) / len(spoken) + (shifted * best[shift[0]] if shift else 0.0)
        name = f"{args.preset} mix ({len(spoken)} voices, {shifted:.0%} shifted)"
        print(f"{name:46s} {cost:10.3f} {best[anchor] / cost:9.1f}")


if __name__ == "__main__":
    main()
