"""The eye-closure expert (vasa/latent/eye_expert.py): what it reads, what it learns, where its gradient goes."""

from __future__ import annotations

import pytest
import torch

from vasa.errors import VasaError
from vasa.latent.eye_expert import EXPERT_WARMUP, EyeClosureExpert, EyeExpertLoss


def _eyes(closed: torch.Tensor, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames with two eyes at fixed places: a dark iris, covered by a skin-coloured lid for a closed eye."""
    B = len(closed)
    img = torch.full((B, 3, size, size), 0.4)
    centres = torch.tensor([[0.35, 0.4], [0.65, 0.4]]).expand(B, 2, 2).clone()  # (x, y)
    for b in range(B):
        for x, y in centres[b]:
            cx, cy = int(x * size), int(y * size)
            img[b, :, cy - 2:cy + 2, cx - 4:cx + 4] = 0.4 if closed[b] else -0.8
    return img, centres


def test_expert_learns_closure_and_scores_the_render_only_through_the_generator():
    """Trained on real crops alone, the expert tells closed eyes from open ones; the generator's term is
    large for an open render of a closed driver and small for a closed one; its gradient reaches the render
    and the expert's loss does not depend on the render; unmeasured items (NaN) are left out."""
    torch.manual_seed(0)
    closed = torch.tensor([0, 1] * 8, dtype=torch.bool)
    driver, centres = _eyes(closed)
    closure = closed.float() * 2 - 1  # standardised-like targets
    expert, loss = EyeClosureExpert(width=8), EyeExpertLoss()
    opt = torch.optim.Adam(expert.parameters(), lr=1e-2)
    for _ in range(150):
        e_loss, _ = loss(expert, driver, driver, centres, closure)
        opt.zero_grad()
        e_loss.backward()
        opt.step()
    assert e_loss.item() < 0.05
    with torch.no_grad():
        read = loss.read(expert, driver, centres)
    assert (read[closed] > 0.5).all() and (read[~closed] < -0.5).all()
    open_render, _ = _eyes(torch.zeros_like(closed))
    open_render.requires_grad_(True)
    e1, g_open = loss(expert, open_render, driver, centres, closure)
    _, g_same = loss(expert, driver, driver, centres, closure)
    assert g_open.item() > 10 * g_same.item()
    torch.testing.assert_close(e1, e_loss.detach(), atol=1e-5, rtol=0)  # the expert's loss: real crops only
    g_open.backward()
    grad = open_render.grad.abs().sum((0, 1))
    assert grad[20:32, 16:30].sum() > 0 and grad[50:, :].sum() == 0  # at the eyes, nowhere near the chin
    part = closure.clone()
    part[1:] = float("nan")
    e_part, g_part = loss(expert, open_render.detach(), driver, centres, part)
    assert torch.isfinite(e_part) and torch.isfinite(g_part)
    e_none, g_none = loss(expert, open_render.detach(), driver, centres, torch.full_like(closure, float("nan")))
    assert e_none.item() == 0 and g_none.item() == 0
    assert EXPERT_WARMUP > 0
    with pytest.raises(VasaError, match="two fallback centres"):
        EyeExpertLoss(fallback=((0.5, 0.5),))


def test_latent_task_eye_expert_needs_guidance(smoke_corpus):
    from vasa.latent.task import LatentTask

    with pytest.raises(VasaError, match="w_eye_expert .* landmark guidance"):
        LatentTask(str(smoke_corpus), "tiny", w_eye_expert=0.1)
