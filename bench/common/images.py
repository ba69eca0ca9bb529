"""Images as every stage reads them: 8-bit RGB, whatever bit depth or mode the file has.

Pillow's `convert("RGB")` clips 16-bit grey pixels (modes I;16, I;16B, I) at 255 instead of scaling
them, so a 16-bit PNG comes out ~90% white and would silently be trained on or called "no face".
`to_rgb` scales by the file's bit depth; every loader of user images goes through it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB: 16-bit and 32-bit integer grey scaled from their range (65535 for 16-bit files;
    for mode I, 65535 when any value exceeds 255, else as 8-bit), float grey taken as 0..1 when it fits
    there, alpha dropped."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        grey = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    return image.convert("RGB")  # a loaded copy even when already RGB: callers close the file after this
