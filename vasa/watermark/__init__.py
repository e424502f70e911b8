"""Responsible use: invisible watermark, provenance (mp4 tag + C2PA) and detection for generated video.

See :mod:`vasa.watermark.embed` (marking), :mod:`vasa.watermark.extract` (blind search),
:mod:`vasa.watermark.detect` (file-level decision, ``vasa detect``) and
:mod:`vasa.watermark.provenance` (metadata tag, signed C2PA manifest).
"""

from vasa.watermark import attacks, codec
from vasa.watermark.codec import Payload
from vasa.watermark.embed import Watermarker, mark_frames, new_generation_id, resolve_watermarker

__all__ = ["attacks", "codec", "Payload", "Watermarker", "mark_frames", "new_generation_id", "resolve_watermarker"]
