"""The procedural identities and the 3D head renderer: shapes, determinism, and that every face
parameter visibly does what it says (pose, blink, jaw, gaze), plus argument errors."""

import json

import numpy as np
import pytest

from vasa.errors import VasaError
from vasa.synth.identity import Identity, sample_identity
from vasa.synth.params import N_PARAMS, PARAM_INDEX, neutral_params
from vasa.synth.parts import CAVITY, EYE, TEETH, TONGUE
from vasa.synth.render import HeadRenderer, camera, project_head_center, render_frame


def _ident(k: int = 0) -> Identity:
    return sample_identity(np.random.default_rng([123, k]))


def _p(**kw) -> np.ndarray:
    p = neutral_params()
    for k, v in kw.items():
        p[PARAM_INDEX[k]] = v
    return p


def _material_pixels(r: HeadRenderer, mats: tuple[int, ...]) -> np.ndarray:
    """Boolean (S, S) mask of render-resolution pixels whose visible surface has one of ``mats``."""
    tri = r.bufs[0]
    return (tri >= 0) & np.isin(r.mesh.mat[np.maximum(tri, 0)], mats)


@pytest.fixture(scope="module")
def renderer() -> HeadRenderer:
    return HeadRenderer(_ident(), resolution=128)


@pytest.mark.parametrize("res", [64, 100, 128, 256])
@pytest.mark.parametrize("style", ["photo", "art"])
def test_shape_dtype(res, style):
    img = render_frame(_ident(1), _p(yaw=10.0, jaw=0.4), resolution=res, style=style)
    assert img.shape == (res, res, 3) and img.dtype == np.uint8
    assert img.std() > 10  # not blank


def test_deterministic():
    a = HeadRenderer(_ident(2)).render(_p(yaw=12.0, jaw=0.3, smile=0.5))
    b = HeadRenderer(_ident(2)).render(_p(yaw=12.0, jaw=0.3, smile=0.5))
    assert np.array_equal(a, b)


def test_yaw_moves_nose_monotonically(renderer):
    yaws = np.arange(-35, 36, 10)
    xs = [renderer.project(_p(yaw=float(y)), "nose_tip")[0] for y in yaws]
    assert np.all(np.diff(xs) > 0.5)  # yaw > 0 turns the face towards the image's right
    imgs = [renderer.render(_p(yaw=float(y))).astype(int) for y in (-35, 0, 35)]
    assert np.abs(imgs[0] - imgs[1]).mean() > 2 and np.abs(imgs[2] - imgs[1]).mean() > 2


def test_pose_centre_and_landmarks(renderer):
    c = camera(128)
    assert 6 < c["fov_y_deg"] < 60 and c["focal_px"] > 0
    assert project_head_center(_p(), 128) == pytest.approx((64.0, 64.0))
    lm = renderer.landmarks(_p())
    assert lm["head_center"] == pytest.approx((64.0, 64.0), abs=1e-3)
    assert lm["eye_l"][0] > 64 > lm["eye_r"][0]  # subject's left eye on the image right
    assert lm["eye_l"][1] < lm["nose_tip"][1] < lm["mouth_center"][1] < lm["chin"][1]
    x, y = renderer.project(_p(pitch=20.0), "nose_tip")
    assert y < lm["nose_tip"][1]  # looking up raises the nose tip
    x, _ = renderer.project(_p(tx=0.5), "head_center")
    assert x > 64


def test_blink_closes_the_eyes(renderer):
    open_img = renderer.render(_p())
    n_open = _material_pixels(renderer, (EYE,)).sum()
    shut_img = renderer.render(_p(blink_l=1.0, blink_r=1.0))
    assert n_open > 100 and _material_pixels(renderer, (EYE,)).sum() == 0
    ex, ey = (int(round(v)) for v in renderer.project(_p(), "eye_l"))
    box = (slice(ey - 3, ey + 4), slice(ex - 5, ex + 6))
    assert np.abs(open_img[box].astype(int) - shut_img[box].astype(int)).mean() > 10
    renderer.render(_p(blink_l=1.0))  # one eye only
    assert 0 < _material_pixels(renderer, (EYE,)).sum() < n_open
    renderer.render(_p(eye_wide=1.0))
    assert _material_pixels(renderer, (EYE,)).sum() > n_open


def test_jaw_opens_the_mouth(renderer):
    counts, dark = [], []
    for j in (0.0, 0.25, 0.5, 0.75, 1.0):
        img = renderer.render(_p(jaw=j))
        counts.append(_material_pixels(renderer, (CAVITY, TEETH, TONGUE)).sum())
        mx, my = (int(round(v)) for v in renderer.project(_p(jaw=j), "mouth_center"))
        box = img[my - 8:my + 9, mx - 10:mx + 11].astype(int).sum(-1)
        dark.append((box < 120).sum())
    assert counts[0] == 0 and np.all(np.diff(counts) > 0)
    assert np.all(np.diff(dark) >= 0) and dark[-1] > dark[0] + 20


def test_gaze_moves_the_iris():
    r = HeadRenderer(_ident(3), resolution=128, supersample=2)

    def iris_x(g: float) -> float:
        img = r.render(_p(gaze_yaw=g))
        big = np.repeat(np.repeat(img, 2, 0), 2, 1).astype(float).sum(-1)  # render-res luminance
        eye = _material_pixels(r, (EYE,))
        dark = eye & (big < np.percentile(big[eye], 40))
        return float(np.nonzero(dark)[1].mean())

    left, mid, right = iris_x(-25.0), iris_x(0.0), iris_x(25.0)
    assert left < mid < right
    assert r.project(_p(gaze_yaw=25.0), "pupil_l")[0] > r.project(_p(), "pupil_l")[0]


def test_art_style_and_identities_differ():
    p = _p(yaw=5.0, jaw=0.2)
    photo = render_frame(_ident(4), p).astype(int)
    art = render_frame(_ident(4), p, style="art").astype(int)
    other = render_frame(_ident(5), p).astype(int)
    assert np.abs(photo - art).mean() > 4
    assert np.abs(photo - other).mean() > 10


def test_identity_json_roundtrip_and_variety():
    ids = [sample_identity(np.random.default_rng([7, k])) for k in range(2000)]
    d = ids[0].to_dict()
    assert Identity.from_dict(json.loads(json.dumps(d))) == ids[0]
    vecs = np.array([[v for v in i.to_dict().values() if isinstance(v, float)] for i in ids])
    vecs = (vecs - vecs.mean(0)) / (vecs.std(0) + 1e-9)
    # every pair differs clearly in the continuous fields (nearest neighbour distance)
    d2 = (vecs ** 2).sum(1)[:, None] + (vecs ** 2).sum(1)[None] - 2 * vecs @ vecs.T
    np.fill_diagonal(d2, np.inf)
    assert np.sqrt(d2.min()) > 1.0
    assert len({i.hair_style for i in ids}) >= 6 and len({i.background for i in ids}) == 4
    tones = np.array([i.skin_tone for i in ids])
    assert tones.min() < 0.05 and tones.max() > 0.95
    with pytest.raises(VasaError):
        Identity.from_dict({"nose": 1.0})


@pytest.mark.parametrize("kwargs", [dict(resolution=32), dict(resolution=1024), dict(resolution=128.0),
                                    dict(style="cartoon"), dict(supersample=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(VasaError):
        HeadRenderer(_ident(), **kwargs)


def test_bad_params(renderer):
    with pytest.raises(VasaError):
        renderer.render(np.zeros(N_PARAMS - 1, np.float32))
    with pytest.raises(VasaError):
        renderer.render(np.full(N_PARAMS, np.nan, np.float32))
    with pytest.raises(VasaError):
        renderer.project(_p(), "forehead")
    with pytest.raises(VasaError):
        HeadRenderer({"seed": 1})
