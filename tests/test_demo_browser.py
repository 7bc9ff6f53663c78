"""The demo page in a real browser (make test-browser): Debian's Chromium, headless, driven by Playwright, its
microphone fed from a wav of "a large red circle" spoken by the Piper voice. Records through the page's own
microphone control, uploads a file, types a sentence, and checks what the page shows each time. (The README's
screenshot, docs/demo.png, is of a trained model: docs/experiments/demo_screenshot.py.)"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_helpers import as_cell, free_port, generated_pictures, write_speech
from PIL import Image

from s2ikit.demo.figures import MARGIN, MEL_HEIGHT, WIDTH

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SENTENCE = "a large red circle"
RECORD_SECONDS = 3.0
NUM, SEED = 4, 0  # the page's defaults


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    return write_speech(tmp_path_factory.mktemp("speech") / "red-circle.wav", SENTENCE)


@pytest.fixture(scope="module")
def page(gan_run, spoken):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 's2ikit[browser]' (make test-browser)")
    pytest.importorskip("gradio", reason="pip install 's2ikit[demo]'")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (make test-browser does)")
    from s2ikit.demo.server import start

    port = free_port()
    app = start(gan_run, "127.0.0.1", port)
    args = [
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken}",  # the microphone plays this file, over and over
        "--no-sandbox",  # CI containers run as root, where Chromium's sandbox refuses to start
    ]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.requested = []  # every URL the page asks for, for the last test
        page.on("request", lambda request: page.requested.append(request.url))
        page.goto(f"http://127.0.0.1:{port}/")
        yield page
        browser.close()
    app.close()


def shown_pictures(page, summary: str) -> list[Image.Image]:
    """Wait until the page says `summary`, then fetch the gallery's pictures as the browser got them."""
    page.locator("#summary").get_by_text(summary).wait_for(timeout=120_000)
    sources = [img.get_attribute("src") for img in page.locator("#pictures img").all()]
    return [Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB") for src in sources]


def heard_figure(page) -> Image.Image:
    src = page.locator("#heard img").get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def test_speaking_into_the_microphone_shows_pictures_and_what_was_heard(page, gan_run, spoken, tmp_path):
    page.get_by_role("tab", name="Speak").click()
    page.get_by_role("button", name="Record").click()
    time.sleep(RECORD_SECONDS)
    page.locator("#microphone button.stop-button").click()
    download = page.locator("#microphone a[download]")
    download.wait_for(timeout=60_000)  # the recording has reached the server: only now is there one to draw
    page.get_by_role("button", name="Draw what I said").click()
    pictures = shown_pictures(page, "the recording")
    assert len(pictures) == NUM and len({p.tobytes() for p in pictures}) == NUM  # one noise vector z each
    # What the page recorded is Chromium's replay of the spoken file (resampled, looped, started anywhere), so
    # it is fetched back from the page: the sentence's sound, and exactly `generate`'s pixels for it. (Whether
    # the pictures look red takes a trained generator; the fixture's draws 32 px noise after two steps.)
    recording = tmp_path / "recording.wav"
    recording.write_bytes(page.request.get(download.get_attribute("href")).body())
    audio, rate = sf.read(recording)
    assert 0.5 * RECORD_SECONDS < len(audio) / rate < 2 * RECORD_SECONDS
    assert np.abs(audio).max() > 0.5 * np.abs(sf.read(spoken)[0]).max()  # the sentence at its level, not silence
    expected = generated_pictures(gan_run, tmp_path / "grid.png", NUM, SEED, wav=recording)
    assert all(np.array_equal(as_cell(p), e) for p, e in zip(pictures, expected))
    figure = np.asarray(heard_figure(page))
    spectrogram = figure[MARGIN : MARGIN + MEL_HEIGHT, MARGIN : MARGIN + WIDTH].astype(int)
    assert spectrogram.std() > 20  # the heard log-mel is shown: speech, not a flat picture
    heard = float(page.locator("#summary").inner_text().split(": ")[1].split(" s heard")[0])
    assert abs(heard - len(audio) / rate) < 0.02  # to a log-mel hop (10 ms)
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)  # kept by pytest for a look after a failure


def test_an_uploaded_file_shows_the_pixels_generate_draws(page, gan_run, spoken, tmp_path):
    stereo = tmp_path / "red-circle-stereo.wav"  # a second channel and another rate, as recordings come
    audio, rate = sf.read(spoken)
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=1), rate, subtype="PCM_16")
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(stereo))
    page.get_by_role("button", name="Draw the recording").click()
    pictures = shown_pictures(page, stereo.name)
    expected = generated_pictures(gan_run, tmp_path / "grid.png", NUM, SEED, wav=stereo)
    assert len(pictures) == NUM
    assert all(np.array_equal(as_cell(p), e) for p, e in zip(pictures, expected))


def test_a_typed_sentence_shows_the_pixels_generate_draws(page, gan_run, tmp_path):
    page.get_by_role("tab", name="Type").click()
    page.locator("#sentence textarea").fill("a small blue square")
    page.get_by_role("button", name="Draw the sentence").click()
    pictures = shown_pictures(page, "the typed sentence")
    expected = generated_pictures(gan_run, tmp_path / "grid.png", NUM, SEED, text="a small blue square")
    assert all(np.array_equal(as_cell(p), e) for p, e in zip(pictures, expected))


def test_a_silent_upload_is_explained_in_the_page(page, tmp_path):
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(44100, dtype=np.int16), 44100)
    page.get_by_role("tab", name="Upload").click()
    clear = page.locator("#upload button[aria-label='Clear']")  # the file of the test before
    if clear.count():
        clear.first.click()
    page.locator("#upload input[type=file]").set_input_files(str(quiet))
    page.get_by_role("button", name="Draw the recording").click()
    page.get_by_text("quiet.wav: silent (no signal at all)").wait_for(timeout=60_000)


def test_the_page_fetches_nothing_from_outside_this_machine(page):
    """A GPU machine behind an SSH tunnel often has no internet: the page (run last, after the tests above)
    must not need any, for fonts, scripts or telemetry."""
    from urllib.parse import urlparse

    fetched = [urlparse(url) for url in page.requested]
    hosts = {url.hostname for url in fetched if url.scheme not in ("data", "blob")}  # those never leave the page
    assert hosts == {"127.0.0.1"}
