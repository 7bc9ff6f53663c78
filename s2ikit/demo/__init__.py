"""`s2ikit demo`: a web page where one speaks (or uploads, or types) a description and sees the pictures.

backend.py is the one seam to the inference library, `SpeechToImage` (speech in, images, log-mel and attention
out; unusable audio and requests past the limits come back as one clear sentence); figures.py draws what the
model heard; app.py lays out the Gradio page; server.py starts and stops it. Gradio is an optional extra
(`pip install 's2ikit[demo]'`), imported only by app.py and server.py when the page is built.
"""

from s2ikit.demo.server import serve

__all__ = ["serve"]
