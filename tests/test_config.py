"""Strict configuration: params.yaml mirrors the dataclasses; bad keys/values are one-line errors."""

from pathlib import Path

import pytest

from vasa.config import PrepareConfig, load_params, parse_overrides
from vasa.stage_kwargs import synth_kwargs
from vasa.errors import VasaError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def test_params_yaml_matches_dataclass_defaults():
    p = load_params(PARAMS)
    assert isinstance(p.prepare, PrepareConfig)
    # every key of params.yaml is a real field, and the file sets the documented defaults
    assert p.prepare.clips >= 1000 and p.prepare.identities >= 2000
    assert set(p.prepare.languages) == {"en", "es", "de", "fr", "cmn"}


def test_smoke_profile_overlays_base():
    base, smoke = load_params(PARAMS).prepare, load_params(PARAMS, profile="smoke").prepare
    assert smoke.clips < base.clips and smoke.out != base.out
    assert smoke.resolution == base.resolution  # untouched keys come from the base file


def test_overrides_parse_yaml_scalars():
    assert parse_overrides(["prepare.clips=7", "prepare.languages=[en, es]"]) == {
        "prepare": {"clips": 7, "languages": ["en", "es"]}}
    assert load_params(PARAMS, overrides=["prepare.clips=7"]).prepare.clips == 7


@pytest.mark.parametrize("override, message", [
    ({"prepare": {"clipz": 3}}, "unknown key 'prepare.clipz' (allowed: source, out, clips"),
    ({"prepare": {"resolution": 1024}}, "'prepare.resolution' = 1024 is out of range [64, 512]"),
    ({"prepare": {"clips": "many"}}, "'prepare.clips' must be of type int"),
    ({"prepare": {"languages": ["en", "xx"]}}, "unknown language 'xx' (allowed: en, es, de, fr, cmn)"),
    ({"prepare": {"languages": ["es"]}}, "must include 'en'"),
    ({"prepare": {"voices": ["m1", "zz"]}}, "unknown voice 'zz'"),
    ({"prepare": {"split_fractions": [0.5, 0.5]}}, "three positive numbers summing to 1"),
    ({"prepare": {"fps": 30}}, "'prepare.fps' = 30 is not allowed (allowed: 25)"),
    ({"preprare": {}}, "unknown section 'preprare'"),
])
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(VasaError) as e:
        load_params(PARAMS, overrides=override)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_profile(tmp_path):
    with pytest.raises(VasaError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(VasaError, match="unknown profile 'nope' \\(available: .*smoke"):
        load_params(PARAMS, profile="nope")
    bad = tmp_path / "params.yaml"
    bad.write_text("prepare: [1, 2\n")
    with pytest.raises(VasaError, match="not valid YAML"):
        load_params(bad)


def test_synth_kwargs_reach_synth_corpus():
    import inspect

    from vasa.synth.corpus import synth_corpus

    kw = synth_kwargs(load_params(PARAMS).prepare)
    sig = inspect.signature(synth_corpus).parameters
    assert set(kw) <= set(sig)  # every knob reaches the function
