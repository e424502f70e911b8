"""Shared fixtures of the generation tests: a tiny random model bundle, a loaded Talker, short speech."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
PORTRAIT = SAMPLES / "portrait_test_1.jpg"  # 128 px corpus frame
PHOTO = SAMPLES / "astronaut.jpg"  # 512 px real photo
FAST = dict(steps=2, seed=0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread_and_dev_key(tmp_path_factory):
    """One torch thread (shared machine) and a throw-away C2PA development key."""
    torch.set_num_threads(1)
    old = os.environ.get("VASA_C2PA_DEV_DIR")
    os.environ["VASA_C2PA_DEV_DIR"] = str(tmp_path_factory.mktemp("c2pa-dev"))
    yield
    if old is None:
        os.environ.pop("VASA_C2PA_DEV_DIR", None)
    else:
        os.environ["VASA_C2PA_DEV_DIR"] = old


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    from vasa.talker import random_bundle

    return random_bundle(tmp_path_factory.mktemp("bundle") / "vasa-tiny", seed=0)


@pytest.fixture(scope="session")
def talker(tiny_bundle):
    from vasa.talker import Talker

    return Talker.from_pretrained(tiny_bundle, device="cpu")


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """2.2 s of synthesised English speech at 16 kHz (55 frames: 3 full motion windows of 16 + a partial one)."""
    from vasa.talker.inputs import load_audio

    return load_audio(SAMPLES / "speech_en.wav")[:int(2.2 * 16000)]
