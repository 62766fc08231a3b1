"""Small scans made on the fly for capture tests (a few words, 300 dpi)."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def scan_png(lines: list[str], *, seed: int = 0, size=(1240, 1754), dpi: int = 300) -> bytes:
    """An RGB page (A5 at 300 dpi by default) with ``lines`` of text and a little noise."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (250, 248, 240))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 36)
    y = 120
    for line in lines:
        draw.text((100, y), line, fill=(20, 20, 30), font=font)
        y += 60
    for _ in range(400):  # scanner dust: every scan's pixels differ
        x, yy = rng.randrange(size[0]), rng.randrange(size[1])
        image.putpixel((x, yy), (rng.randrange(200, 255),) * 3)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()
