"""Generation: one portrait + speech -> a watermarked talking-face video (offline, streaming, batch, reenactment).

Public API:

* :class:`Talker` (``from_pretrained``, ``generate``, ``stream``, ``reenact``, ``write``) and its result
  :class:`Generation` -- :mod:`vasa.talker.talker`
* the model bundle: :func:`save_bundle`, :func:`random_bundle`, :func:`load_bundle` -- :mod:`vasa.talker.bundle`
* inputs: :func:`load_image`, :func:`prepare_portrait`, :func:`paste_back`, :func:`load_audio`,
  :class:`Controls` and the allowed ranges -- :mod:`vasa.talker.inputs`
* :func:`run_batch` (:mod:`vasa.talker.batch`), :func:`simulate_stream` / :func:`microphone_chunks`
  (:mod:`vasa.talker.live`)
"""

import importlib

_EXPORTS = {
    "DEFAULT_BUNDLE": "bundle", "load_bundle": "bundle", "random_bundle": "bundle", "save_bundle": "bundle",
    "DISTANCE_RANGE": "inputs", "GAZE_PITCH_RANGE": "inputs", "GAZE_YAW_RANGE": "inputs", "Controls": "inputs",
    "load_audio": "inputs", "load_image": "inputs", "paste_back": "inputs", "prepare_portrait": "inputs",
    "DEFAULT_RESOLUTION": "talker", "Generation": "talker", "Talker": "talker",
    "run_batch": "batch", "simulate_stream": "live", "microphone_chunks": "live",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):  # lazy: `import vasa.talker.inputs` (the CLI's help) does not import torch
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vasa.talker.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vasa.talker' has no attribute {name!r}")
