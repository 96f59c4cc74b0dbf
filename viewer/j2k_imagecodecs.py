"""A pydicom decoding plugin for JPEG 2000 that decodes one frame on several threads.

Why: JPEG 2000 is the slowest syntax a reader meets (a 512x512 CT frame ~21 ms with
pylibjpeg-openjpeg or Pillow, both single-threaded OpenJPEG). imagecodecs wraps the same
OpenJPEG library but exposes its code-block threading: ~11 ms for that frame on 2 cores
(`bench/render.py`, case ct-j2k). Output is identical to pylibjpeg-openjpeg's, array for
array, on every JPEG 2000 file of the corpus (tests/viewer/test_decoders.py checks it), so
pydicom's own corrections afterwards (sign, precision, photometric) stay exactly the same:
this module mirrors what pydicom's pylibjpeg plugin tells the runner about OpenJPEG output.

Registered by `viewer.decoding` when imagecodecs is installed; pylibjpeg stays the fallback.
"""

from __future__ import annotations

import os

from pydicom import uid
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import UID

# JPEG 2000 Part 1 only: HTJ2K stays with pylibjpeg-openjpeg until checked the same way.
SYNTAXES = (uid.JPEG2000Lossless, uid.JPEG2000)
DECODER_DEPENDENCIES = {ts: ("imagecodecs>=2024.1.1",) for ts in SYNTAXES}
# More threads than cores only adds switching; 4 is where a 512x512 frame stops gaining.
THREADS = max(1, min(4, os.cpu_count() or 1))


def is_available(ts: UID) -> bool:
    if ts not in SYNTAXES:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.JPEG2K.available)


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    import imagecodecs

    arr = imagecodecs.jpeg2k_decode(src, numthreads=THREADS)
    # OpenJPEG undoes the multi-component transform: ICT/RCT frames come out as RGB.
    if runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
        runner.set_option("photometric_interpretation", "RGB")
    # OpenJPEG's sample container follows the codestream's precision, not Bits Allocated.
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    for limit, container in ((8, 8), (16, 16), (32, 32)):
        if 0 < precision <= limit:
            runner.set_option("bits_allocated", container)
            break
    return arr.tobytes()
