"""The shared training loop: learning, exact resume, DDP and accumulation equivalence, checkpoints, EMA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from vasa.errors import VasaError
from vasa.train import EMA, EpochSampler, OptimGroup, latest_checkpoint, load_pretrained, save_pretrained, train
from vasa.train import checkpoint as ckpt

sys.path.insert(0, str(Path(__file__).parent))
from _train_toy import GANTask, MLPTask  # noqa: E402

FAST = dict(lr=1e-2, log_every=1, checkpoint_every=0, device="cpu", progress=False)


def curve(out: Path, name: str = "loss") -> np.ndarray:
    rows = (out / "dvclive" / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()[1:]
    return np.array([[float(v) for v in r.split("\t")] for r in rows])


def weights(out: Path, kind: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(out / "checkpoints") / f"{kind}.safetensors"))


def test_loss_decreases_and_outputs(tmp_path):
    m = train(MLPTask(), out_dir=tmp_path, steps=60, batch_size=16, **{**FAST, "log_every": 10},
              sample_every=30, ema_decay=0.9, grad_clip=10.0)
    losses = curve(tmp_path)[:, 1]
    assert m["step"] == 60 and set(m) >= {"loss", "abs_err", "lr", "grad_norm"}
    assert losses[-1] < 0.3 * losses[0], losses
    assert (tmp_path / "dvclive" / "plots" / "images" / "grid.png").exists()
    assert json.loads((tmp_path / "dvclive" / "metrics.json").read_text())["step"] == 60
    config, states = load_pretrained(tmp_path / "model")  # the final export holds the EMA weights
    assert config["task"]["hidden"] == 16
    torch.testing.assert_close(states["model"]["0.weight"], weights(tmp_path, "ema")["model.0.weight"], rtol=0, atol=0)


def test_resume_is_bit_identical(tmp_path):
    # mid-epoch stop (4 steps/epoch), RNG in the loss, EMA, cosine + warmup, clipping, accumulation
    kw = dict(steps=11, batch_size=4, grad_accum=2, ema_decay=0.9, lr_schedule="cosine", warmup_steps=3,
              grad_clip=0.5, **{**FAST, "checkpoint_every": 4})
    train(MLPTask(noise=0.1), out_dir=tmp_path / "a", **kw)
    train(MLPTask(noise=0.1), out_dir=tmp_path / "b", stop_at_step=5, **kw)
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-00000005"
    train(MLPTask(noise=0.1), out_dir=tmp_path / "b", **kw)
    for kind in ("model", "ema", "state"):
        a, b = weights(tmp_path / "a", kind), weights(tmp_path / "b", kind)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (kind, k)
    assert np.array_equal(curve(tmp_path / "a"), curve(tmp_path / "b"))  # the logged curve too
    again = train(MLPTask(noise=0.1), out_dir=tmp_path / "b", **kw)  # finished: nothing left to do
    assert again["step"] == 11


def test_ddp_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "_train_toy.py"), str(tmp_path / "ddp"), "6", "4"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    train(MLPTask(), out_dir=tmp_path / "one", steps=6, batch_size=8, **FAST)
    np.testing.assert_allclose(curve(tmp_path / "ddp"), curve(tmp_path / "one"), rtol=1e-5)
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_grad_accumulation_equals_bigger_batch(tmp_path):
    train(MLPTask(), out_dir=tmp_path / "acc", steps=6, batch_size=4, grad_accum=2, **FAST)
    train(MLPTask(), out_dir=tmp_path / "big", steps=6, batch_size=8, **FAST)
    np.testing.assert_allclose(curve(tmp_path / "acc"), curve(tmp_path / "big"), rtol=1e-5)
    a, b = weights(tmp_path / "acc"), weights(tmp_path / "big")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_sampler_shards_the_global_batch():
    one = EpochSampler(40, seed=3, micro_batch=4, grad_accum=2)
    ranks = [EpochSampler(40, seed=3, micro_batch=2, grad_accum=2, rank=r, world_size=2) for r in range(2)]
    assert one.steps_per_epoch == 5 and one.micro_batches(1) != one.micro_batches(0)
    for a, r0, r1 in zip(one.micro_batches(1, 2), ranks[0].micro_batches(1, 2), ranks[1].micro_batches(1, 2)):
        assert a == r0 + r1


def test_gan_groups_and_alternating(tmp_path):
    task = GANTask()
    m = train(task, out_dir=tmp_path / "g", steps=4, batch_size=8, ema_decay=0.5, **FAST)
    assert {"loss_disc", "loss_gen", "fake_mean", "lr_gen", "lr_disc"} <= set(m)
    assert {k.split(".")[0] for k in weights(tmp_path / "g", "ema")} == {"gen"}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        init = task.build_model()
    trained = weights(tmp_path / "g")
    for name in ("gen", "disc"):
        assert not torch.equal(init[name][0].weight, trained[f"{name}.0.weight"])

    # each group's parameters get gradients from their own loss only: the generator's loss (here the
    # exact negative of the discriminator's) must not change the discriminator's update
    class Opposed(GANTask):
        with_gen = True

        def loss(self, m, real, step, group=None):
            (losses, metrics) = super().loss(m, real, step)
            return ({"disc": losses["disc"], "gen": -losses["disc"]} if self.with_gen
                    else {"disc": losses["disc"]}), metrics
    only_d = Opposed()
    only_d.with_gen = False
    train(Opposed(), out_dir=tmp_path / "both", steps=1, batch_size=8, **FAST)
    train(only_d, out_dir=tmp_path / "d", steps=1, batch_size=8, **FAST)
    both, d = weights(tmp_path / "both"), weights(tmp_path / "d")
    assert torch.equal(both["disc.0.weight"], d["disc.0.weight"])
    assert not torch.equal(d["disc.0.weight"], init["disc"][0].weight)
    assert torch.equal(d["gen.0.weight"], init["gen"][0].weight)  # a group without a loss is not stepped
    assert not torch.equal(both["gen.0.weight"], init["gen"][0].weight)

    class Alternating(GANTask):
        alternate = True
    m = train(Alternating(), out_dir=tmp_path / "alt", steps=3, batch_size=8, **FAST)
    assert m["step"] == 3 and np.isfinite(m["loss_gen"])


def test_checkpoint_round_trip(tmp_path):
    mods = {"enc": nn.Linear(3, 4), "dec": nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))}
    save_pretrained(tmp_path / "exp", mods, {"dim": 4, "names": ["a", "b"]})
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["config.json", "model.safetensors"]
    fresh = {"enc": nn.Linear(3, 4), "dec": nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))}
    config, states = load_pretrained(tmp_path / "exp", fresh)
    assert config == {"dim": 4, "names": ["a", "b"]} and set(states) == {"enc", "dec"}
    for name in mods:
        for k, v in mods[name].state_dict().items():
            assert torch.equal(v, fresh[name].state_dict()[k])
    with pytest.raises(VasaError, match="do not fit"):
        load_pretrained(tmp_path / "exp", {"enc": nn.Linear(3, 5), "dec": fresh["dec"]})
    with pytest.raises(VasaError, match="run the training stage"):
        load_pretrained(tmp_path / "missing")

    # optimizer state: tensors + JSON structure, exact
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1, betas=(0.8, 0.9))
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    tensors, structure = ckpt.optimizer_to_tensors(opt, "optim.x")
    opt2 = torch.optim.AdamW(net.parameters())
    ckpt.optimizer_from_tensors(opt2, tensors, json.loads(json.dumps(structure)))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)
    for p in net.parameters():
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][k], opt2.state[p][k])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    w = {"m.w": torch.ones(2)}
    ckpt.save_checkpoint(tmp_path, 1, weights=w, ema=None, state_tensors={}, state={"step": 1})
    calls = []

    def failing(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(tensors, path)
    real = ckpt.save_file
    monkeypatch.setattr(ckpt, "save_file", failing)
    with pytest.raises(VasaError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 2, weights=w, ema=None, state_tensors={"x": torch.zeros(1)}, state={"step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]  # no partial step 2, no temporaries
    assert ckpt.Checkpoint(latest_checkpoint(tmp_path)).step == 1
    (tmp_path / "step-00000003").mkdir()  # a folder without trainer.json is not a checkpoint
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    for i in range(4, 8):
        ckpt.save_checkpoint(tmp_path, i, weights=w, ema=None, state_tensors={}, state={"step": i}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000006", "step-00000007"]


def test_ema_math():
    live = nn.Linear(1, 1, bias=False)
    nn.init.constant_(live.weight, 1.0)
    ema = EMA({"m": live}, decay=0.9, warmup=False)
    expected = 1.0
    for target in (2.0, 5.0, -1.0):
        nn.init.constant_(live.weight, target)
        ema.update({"m": live})
        expected = 0.9 * expected + 0.1 * target
        assert ema.modules["m"].weight.item() == pytest.approx(expected, rel=1e-6)
    assert not ema.modules["m"].weight.requires_grad
    warm = EMA({"m": live}, decay=0.99)
    assert [round(warm.current_decay(), 4) for _ in range(1)] == [0.1]  # (1+0)/(10+0)
    for _ in range(1000):
        warm.update({"m": live})
    assert warm.current_decay() == 0.99
    with pytest.raises(ValueError):
        EMA({"m": live}, decay=1.0)


def test_config_mismatch_and_bad_inputs(tmp_path):
    train(MLPTask(hidden=8), out_dir=tmp_path, steps=2, batch_size=8, **FAST)
    with pytest.raises(VasaError, match=r"task\.hidden: 8 -> 12.*resume=False") as e:
        train(MLPTask(hidden=12), out_dir=tmp_path, steps=4, batch_size=8, **FAST)
    assert "\n" not in str(e.value)
    with pytest.raises(VasaError, match=r"train\.lr"):
        train(MLPTask(hidden=8), out_dir=tmp_path, steps=4, batch_size=8, **{**FAST, "lr": 0.5})
    m = train(MLPTask(hidden=12), out_dir=tmp_path, steps=2, batch_size=8, resume=False, **FAST)
    assert m["step"] == 2
    with pytest.raises(VasaError, match="steps must be a positive integer"):
        train(MLPTask(), out_dir=tmp_path, steps=0, batch_size=8, **FAST)
    (tmp_path / "file").write_text("")
    with pytest.raises(VasaError, match="cannot write to out_dir"):
        train(MLPTask(), out_dir=tmp_path / "file" / "run", steps=1, batch_size=8, **FAST)
    with pytest.raises(VasaError, match="lower batch_size"):
        train(MLPTask(n=4), out_dir=tmp_path / "small", steps=1, batch_size=8, **FAST)
