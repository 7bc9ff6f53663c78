"""The demo page answering a trained model, as a person would use it: a sentence spoken by a voice the model
never heard plays into Chromium's microphone, the page records it and draws; the page is saved as a PNG.

Needs `make test-browser`'s Chromium and Playwright (the browser extra) and a trained run or export, e.g. the
`runs/shapes/gan/checkpoints/best.pt` of `make reproduce`.

Usage: python docs/experiments/demo_screenshot.py MODEL OUT.png [--voice flite:slt] [--sentence "..."]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf

CHROMIUM = Path("/usr/bin/chromium")


def speak(voice: str, sentence: str, path: Path) -> Path:
    from s2ikit.tts import SynthesisParams, load_voice

    backend = load_voice(voice)
    audio = backend.synthesize(sentence, SynthesisParams())
    # a second of silence after the sentence: Chromium loops the file, and the recording starts anywhere in it
    silence = [0.0] * backend.sample_rate
    sf.write(path, list(audio) + silence, backend.sample_rate, subtype="PCM_16")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run folder, checkpoint or export")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--voice", default="flite:slt", help="ENGINE:VOICE speaking into the microphone")
    parser.add_argument("--sentence", default="a large green triangle")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the page records")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from s2ikit.demo.server import start

    with tempfile.TemporaryDirectory() as folder:
        wav = speak(args.voice, args.sentence, Path(folder) / "spoken.wav")
        app = start(args.model, "127.0.0.1", 7861)
        flags = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--no-sandbox",
        ]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto("http://127.0.0.1:7861/")
            page.get_by_role("tab", name="Speak").click()
            page.get_by_role("button", name="Record").click()
            time.sleep(args.seconds)
            page.locator("#microphone button.stop-button").click()
            page.locator("#microphone a[download]").wait_for(timeout=60_000)
            page.get_by_role("button", name="Draw what I said").click()
            page.locator("#summary").get_by_text("the recording").wait_for(timeout=120_000)
            page.locator("#pictures img").first.wait_for(timeout=60_000)
            time.sleep(1.0)  # the gallery's images load after the summary
            page.screenshot(path=str(args.out), full_page=True)
            print(f"{args.out}: {args.voice} saying {args.sentence!r} into the microphone")
            browser.close()
        app.close()


if __name__ == "__main__":
    main()
