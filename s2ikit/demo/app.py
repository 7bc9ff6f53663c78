"""The demo page: three ways in (microphone, uploaded file, typed sentence), the number of pictures and a seed;
out come the pictures of one input side by side, the figure of what the model heard, and the numbers behind it.

Each way in is its own API endpoint (/from_microphone, /from_upload, /from_text), so Gradio's Python client
drives the page exactly as a visitor does. Unusable input becomes one sentence in the page (a gr.Error).
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from s2ikit.audio.limits import GRID_COLUMNS, MAX_IMAGES, MAX_TEXT_CHARS
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.demo.backend import draw
from s2ikit.demo.figures import heard_figure
from s2ikit.utils.errors import UserError

# Small generators (32 px) are shown enlarged, nearest-neighbour keeping their pixels honest; the gallery shrinks
# to its one row instead of Gradio's fixed height.
CSS = "#pictures img { image-rendering: pixelated; } #pictures .fixed-height { min-height: 0; max-height: none; }"


def answer(pipe: SpeechToImage, num, seed, *, wav: str | None = None, text: str = "", name: str = ""):
    """One request: (gallery, heard figure, one-line summary, details) or a gr.Error with the reason."""
    try:
        num, seed = _whole(num, "number of images", 1, MAX_IMAGES), _whole(seed, "seed", 0, 2**31 - 1)
        picture = draw(pipe, num, seed, wav=wav, text=text, name=name)
    except UserError as e:
        # gr.Error renders HTML, and the message may hold an uploaded file's name.
        raise gr.Error(html.escape(str(e), quote=False), title="Cannot draw that", print_exception=False) from None
    gallery = [(image, f"z #{k}, seed {seed}") for k, image in enumerate(picture.images)]
    details = {
        "input": name or text.strip(),
        "seconds": round(picture.seconds, 3),
        "log_mel_frames": int(picture.mel.shape[0]),
        "encoder_steps": int(picture.attention.shape[0]),
        "attention": [round(float(a), 5) for a in picture.attention],
        "images": num,
        "seed": seed,
        "image_size": int(picture.images.shape[1]),
        "generator_step": picture.step,
    }
    heard = f"{picture.seconds:.2f} s heard" if wav is not None else f"spoken in {picture.seconds:.2f} s"
    summary = f"**{html.escape(name or 'the typed sentence')}**: {heard}; {num} pictures, seed {seed}"
    return gr.Gallery(value=gallery, columns=min(num, GRID_COLUMNS)), heard_figure(picture), summary, details


def _whole(value, what: str, low: int, high: int) -> int:
    if value is None or float(value) != int(float(value)) or not low <= int(float(value)) <= high:
        raise UserError(f"{what}: a whole number from {low} to {high}, not {value!r}")
    return int(float(value))


def build_app(pipe: SpeechToImage) -> gr.Blocks:
    with gr.Blocks(title="s2ikit demo", analytics_enabled=False) as app:
        step = pipe.step
        shown = "/".join(pipe.bundle.path.parts[-3:])  # the run folder and the file: where it came from, not our disk
        gr.Markdown(
            "# s2ikit: say what to draw\n"
            f"Generator `{shown}`" + (f" (step {step})" if step is not None else "") + ". Speak a "
            "description, upload a recording or type a sentence; each picture uses a different noise vector z, "
            "so the row shows what the speech fixes and what z varies."
        )
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Speak"):
                    microphone = gr.Audio(
                        sources=["microphone"], type="filepath", label="Microphone", elem_id="microphone"
                    )
                    from_microphone = gr.Button("Draw what I said", variant="primary")
                with gr.Tab("Upload"):
                    upload = gr.Audio(
                        sources=["upload"],
                        type="filepath",
                        label="A recording (any rate, mono or not)",
                        elem_id="upload",
                    )
                    from_upload = gr.Button("Draw the recording", variant="primary")
                with gr.Tab("Type"):
                    text = gr.Textbox(
                        label=f"A sentence, spoken by the data set's voice (up to {MAX_TEXT_CHARS} characters)",
                        placeholder="a large red circle",
                        elem_id="sentence",
                    )
                    from_text = gr.Button("Draw the sentence", variant="primary")
                num = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Pictures (one noise vector z each)")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed (the same seed gives the same pictures)")
            with gr.Column(scale=2):
                pictures = gr.Gallery(
                    label="Pictures",
                    elem_id="pictures",
                    columns=4,
                    rows=1,
                    height="auto",
                    format="png",
                    object_fit="contain",
                )
                summary = gr.Markdown(elem_id="summary")
                # The figure carries its own titles; Gradio's label badge would cover the first.
                heard = gr.Image(
                    label="What the model heard", show_label=False, elem_id="heard", format="png", interactive=False
                )
                with gr.Accordion("The numbers behind the figure", open=False):
                    details = gr.JSON(label="Details", elem_id="details")
        outputs = [pictures, heard, summary, details]

        def on_microphone(path, n, s):
            if path is None:
                raise gr.Error("record something first: press Record, speak, then Stop", print_exception=False)
            return answer(pipe, n, s, wav=path, name="the recording")

        def on_upload(path, n, s):
            if path is None:
                raise gr.Error("upload a recording first", print_exception=False)
            return answer(pipe, n, s, wav=path, name=Path(path).name)

        def on_text(sentence, n, s):
            return answer(pipe, n, s, text=sentence or "")

        from_microphone.click(on_microphone, [microphone, num, seed], outputs, api_name="from_microphone")
        from_upload.click(on_upload, [upload, num, seed], outputs, api_name="from_upload")
        from_text.click(on_text, [text, num, seed], outputs, api_name="from_text")
        text.submit(on_text, [text, num, seed], outputs, api_visibility="private")  # Enter in the box
    return app
