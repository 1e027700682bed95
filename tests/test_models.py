"""The paper's networks: configs, shapes, parameter counts, spectral norm removal, one-person generator."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from models import (
    CONFIGS,
    Discriminator,
    Embedder,
    Generator,
    PersonGenerator,
    flops,
    get_config,
    has_spectral_norm,
    remove_spectral_norm,
)
from puppet.errors import PuppetError


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_get_config_names_and_errors():
    for name in CONFIGS:
        cfg = get_config(name)
        assert cfg.image_size > 0 and cfg.emb_dim > 0
        stored = cfg.to_dict()  # as a checkpoint stores it: plain JSON values
        assert json.loads(json.dumps(stored)) == stored
        assert get_config(stored) == cfg  # and read back, the same config
    assert get_config("paper").image_size == 256 and get_config("paper").emb_dim == 512
    assert get_config("small").image_size == 128 and get_config("tiny").image_size <= 64
    # a checkpoint written before an optional field existed reads with its default
    older = {k: v for k, v in get_config("tiny").to_dict().items() if k not in ("correction", "head_norm")}
    assert get_config(older) == get_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_config("tiny").image_size = 128  # type: ignore[misc]
    with pytest.raises(PuppetError, match="unknown fields colour"):
        get_config({**get_config("tiny").to_dict(), "colour": "red"})
    with pytest.raises(PuppetError, match="unknown name; use one of") as e:
        get_config("huge")
    assert all(name in str(e.value) for name in CONFIGS)  # the error lists every config there is
    with pytest.raises(PuppetError, match="emb_dim"):
        get_config("tiny").replace(e_channels=[8, 16, 32, 33])
    with pytest.raises(PuppetError, match="missing fields"):
        get_config({"image_size": 64})


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_forward_shapes(name):
    torch.manual_seed(0)
    cfg = get_config(name)
    s, b = cfg.image_size, 2 if name == "tiny" else 1  # small: about 2 s a forward on two cores
    E, G, D = Embedder(cfg).eval(), Generator(cfg).eval(), Discriminator(cfg, num_videos=5).eval()
    x, y = torch.rand(b, 3, s, s) * 2 - 1, torch.rand(b, 3, s, s) * 2 - 1
    with torch.no_grad():
        e = E(x, y)
        assert e.shape == (b, cfg.emb_dim)
        e_hat = E.embed_frames(x[:, None].expand(-1, 2, -1, -1, -1), y[:, None].expand(-1, 2, -1, -1, -1))
        torch.testing.assert_close(e_hat, e)  # the mean of K identical frames' embeddings
        psi = G.psi_from_embedding(e)
        assert psi.shape == (b, G.n_adain) and G.P.weight.shape == (G.n_adain, cfg.emb_dim)
        out = G(y, psi)
        assert out.shape == (b, 3, s, s) and out.abs().max() <= 1
        score, feats = D(x, y, i=torch.tensor([0, 4])[:b])
        assert score.shape == (b,) and len(feats) >= len(cfg.d_channels)
        assert all(f.shape[0] == b and torch.isfinite(f).all() for f in feats)
        score_w, _ = D(x, y, w=D.w0 + e)  # fine-tuning's explicit w
        assert score_w.shape == (b,)
    with pytest.raises(TypeError):
        D(x, y)


def test_paper_parameter_counts_and_shapes():
    """The paper's reproductions: E ~15 M, G ~38 M with P, D ~20 M without W, each within +-15%.

    Built on the meta device (shapes only, no memory, no init): a real 256x256 forward of all three takes
    tens of seconds on two CPU cores. Spectral norm adds buffers, not parameters, so it's left out here.
    """
    with torch.device("meta"):
        E = Embedder("paper", spectral=False)
        G = Generator("paper", spectral=False)
        D = Discriminator("paper", num_videos=3, spectral=False)
    n_e, n_g, n_d = n_params(E), n_params(G), n_params(D) - D.W.weight.numel()
    assert 0.85 * 15e6 <= n_e <= 1.15 * 15e6, n_e
    assert 0.85 * 38e6 <= n_g <= 1.15 * 38e6, n_g
    assert 0.85 * 20e6 <= n_d <= 1.15 * 20e6, n_d
    assert G.n_adain == 2 * sum(G.adain_channels) and n_params(G.P) == G.n_adain * 512
    z = torch.zeros(1, 3, 256, 256, device="meta")
    assert E(z, z).shape == (1, 512)
    assert G(z, torch.zeros(1, G.n_adain, device="meta")).shape == (1, 3, 256, 256)
    score, feats = D(z, z, i=torch.zeros(1, dtype=torch.long, device="meta"))
    assert score.shape == (1,) and feats[-1].shape == (1, 512, 4, 4)
    # Self-attention where the paper puts it: 32x32 in E, G's down path and D; 64x64 in G's up path.
    for blocks, expected in [(E.blocks, 32), (G.body.down, 32), (D.blocks, 32)]:
        h, sizes = torch.cat([z, z], 1) if blocks is not G.body.down else z, []
        for blk in blocks:
            h = blk(h)
            if type(blk).__name__ == "SelfAttention":
                sizes.append(h.shape[-1])
        assert sizes == [expected]
    ups = [m for m in G.body.up if type(m).__name__ in ("ResBlockUp", "SelfAttention")]
    size, sizes = 16, []
    for m in ups:
        if type(m).__name__ == "ResBlockUp":
            size *= 2
        else:
            sizes.append(size)
    assert sizes == [64]


def test_adain_params_layout():
    G = Generator("tiny")
    psi = torch.arange(G.n_adain, dtype=torch.float32)[None].repeat(2, 1)
    params = G.adain_params(psi)
    assert [s.shape[1] for s, _ in params] == G.adain_channels and len(params) == len(G.adain_channels)
    c0 = G.adain_channels[0]
    assert torch.equal(params[0][0][0], 1 + torch.arange(c0, dtype=torch.float32))  # scale = 1 + psi part
    assert torch.equal(params[0][1][0], torch.arange(c0, 2 * c0, dtype=torch.float32))
    assert params[-1][1][0, -1].item() == G.n_adain - 1
    with pytest.raises(ValueError):
        G.adain_params(torch.zeros(1, G.n_adain + 1))


def _train_a_little(module: nn.Module, *args):
    """Move the power-iteration vectors away from their initial state, as training would."""
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(*args)
    module.eval()


def test_remove_spectral_norm_keeps_outputs():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    s = cfg.image_size
    x, y = torch.rand(2, 3, s, s) * 2 - 1, torch.rand(2, 3, s, s) * 2 - 1
    E, G, D = Embedder(cfg), Generator(cfg), Discriminator(cfg, num_videos=2)
    i = torch.tensor([0, 1])
    psi = 0.1 * torch.randn(2, G.n_adain)
    for gamma in [m.gamma for net in (E, G, D) for m in net.modules() if hasattr(m, "gamma")]:
        nn.init.constant_(gamma, 0.5)  # attention on, so its convs matter too
    runs = [(E, (x, y)), (G, (y, psi)), (D, (x, y, i))]
    for net, args in runs:
        _train_a_little(net, *args)
        with torch.no_grad():
            before = net(*args)
            copied = remove_spectral_norm(copy.deepcopy(net))  # on a copy: the original keeps working
            again = net(*args)
            after = copied(*args)
        before, again, after = (t[0] if isinstance(t, tuple) else t for t in (before, again, after))
        assert has_spectral_norm(net) and not has_spectral_norm(copied)
        assert torch.equal(before, again)
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
        assert copied.training is False
    remove_spectral_norm(G)  # in place, one call
    assert not has_spectral_norm(G)
    assert not any("parametrizations" in k for k in G.state_dict())
    # A generator built without spectral norm loads that state dict (what a target file stores).
    plain = Generator(cfg, spectral=False)
    plain.load_state_dict(G.state_dict())


def test_person_generator_matches_generator():
    torch.manual_seed(0)
    G = Generator("tiny")
    s = G.cfg.image_size
    for m in G.modules():
        if hasattr(m, "gamma"):
            nn.init.constant_(m.gamma, 0.5)
    y = torch.rand(3, 3, s, s) * 2 - 1
    psi = 0.2 * torch.randn(1, G.n_adain)
    _train_a_little(G, y, psi.expand(3, -1))
    with torch.no_grad():
        ref = G(y, psi.expand(3, -1))
        pg = PersonGenerator(G, psi)
        out = pg(y)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-5)
    assert has_spectral_norm(G) and not has_spectral_norm(pg)  # G untouched, the copy is plain
    assert not any(k.startswith("P.") for k in pg.state_dict())
    assert all(not p.requires_grad for p in pg.parameters())
    with pytest.raises(ValueError):
        PersonGenerator(G, torch.zeros(2, G.n_adain))


def test_person_generator_exports_to_plain_onnx(tmp_path):
    """The ops export/TensorRT rely on; InstanceNormalization nodes carry AdaIN (kept in FP32 there)."""
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    G = Generator("tiny").eval()
    pg = PersonGenerator(G, 0.1 * torch.randn(1, G.n_adain))
    s = G.cfg.image_size
    y = torch.rand(1, 3, s, s) * 2 - 1
    path = tmp_path / "pg.onnx"
    torch.onnx.export(pg, (y,), str(path), opset_version=17, dynamo=False, input_names=["sketch"],
                      output_names=["image"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    allowed = {"Conv", "InstanceNormalization", "Mul", "Add", "Resize", "MatMul", "Softmax", "Tanh", "Relu",
               "AveragePool", "Transpose", "Reshape", "Shape", "Slice", "Concat", "Constant", "Identity",
               "Gather", "Unsqueeze"}
    assert ops <= allowed, ops - allowed
    n_in = sum(1 for n in onnx.load(str(path)).graph.node if n.op_type == "InstanceNormalization")
    assert n_in >= len(G.adain_channels)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"sketch": y.numpy()})[0]
    with torch.no_grad():
        ref = pg(y).numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_flops_counts_a_conv():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert flops(conv, (1, 3, 16, 16)) == 2 * 3 * 8 * 9 * 16 * 16
    G = Generator("tiny").eval()
    pg = PersonGenerator(G, torch.zeros(1, G.n_adain))
    s = G.cfg.image_size
    assert flops(pg, (1, 3, s, s)) > 0


def test_appearance_head_keeps_its_inputs_alive():
    """The correction head's input is instance-normalised before its ReLU: even when the up path's output
    has drifted all negative (then, without the norm, the output is the warp and no gradient comes back),
    about half of the head's inputs stay positive and the layers below get gradients. Without the norm (a
    config without head_norm) the same drift kills them all; every appearance config builds G with it."""
    torch.manual_seed(0)
    s = 64
    y, warped = torch.rand(2, 3, s, s) * 2 - 1, torch.rand(2, 3, s, s) * 2 - 1
    for head_norm in (True, False):
        G = Generator(get_config("tiny-warp").replace(head_norm=head_norm))
        nn.init.normal_(G.body.delta.weight, std=0.1)  # a head that has learned something
        last = [b for b in G.body.up if hasattr(b, "conv2")][-1]
        with torch.no_grad():  # the up path's output far below zero everywhere (its features still vary)
            last.conv2.bias.fill_(-50.0)
            last.skip.bias.fill_(-50.0)
        seen: dict = {}
        hook = G.body.delta.register_forward_hook(lambda m, i, o, seen=seen: seen.update(h=i[0]))
        psi = torch.zeros(2, G.n_adain, requires_grad=True)
        out = G(y, psi, warped)
        hook.remove()
        (out - warped.clamp(-1, 1) * 0.5).abs().mean().backward()
        alive = float((seen["h"] > 0).float().mean())
        grad = float(G.body.down[0].conv1.parametrizations.weight.original.grad.abs().sum())
        if head_norm:
            assert 0.3 < alive < 0.7 and grad > 0
        else:
            assert alive == 0.0 and grad == 0.0
    warp_configs = [name for name in CONFIGS if get_config(name).takes_warp]
    assert {"cpu-warp", "paper-warp"} <= set(warp_configs)  # the shipped model's and the paper-size one
    for name in warp_configs:
        assert isinstance(Generator(name, spectral=False).body.head_norm, nn.InstanceNorm2d), name


def test_region_gate_keeps_the_correction_to_the_eyes_and_mouth(grace_hopper_path):
    """correction "regions": a correction head with random weights changes the warp only around the eyes and
    the mouth of the sketch's face (read off the sketch's colours), at any mouth opening; "full" changes it
    everywhere. The gate has no weights, so the same state dict loads into either."""
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.pose import Motion, move
    from puppet.faces.sketch import sketch_tensor
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    lms = detect(img)
    crop = Crop.from_landmarks(lms)
    s = 128
    face = crop.to_crop(lms, s)
    cfg = get_config("tiny-warp").replace(image_size=s, net_size=64)
    torch.manual_seed(0)
    gated = Generator(cfg).eval()
    nn.init.normal_(gated.body.delta.weight, std=0.05)
    full = Generator(cfg.replace(correction="full")).eval()
    full.load_state_dict(gated.state_dict())
    warped = torch.zeros(1, 3, s, s)
    for motion in (Motion(), Motion(mouth=1.0), Motion(blink=1.0, yaw=15)):
        pts = move(face, motion)
        y = sketch_tensor(pts, s)
        psi = torch.zeros(1, gated.n_adain)
        with torch.no_grad():
            changed = (gated(y, psi, warped) - warped).abs().amax(1)[0] > 1e-4
            assert ((full(y, psi, warped) - warped).abs().amax(1)[0] > 1e-4).float().mean() > 0.9

        def at(p, changed=changed):
            x, yy = np.clip(np.round(np.asarray(p)).astype(int), 0, s - 1)
            return bool(changed[yy, x])

        assert at(pts[60:68].mean(0)) and at(pts[36:42].mean(0)) and at(pts[42:48].mean(0))
        iod = float(np.linalg.norm(pts[45] - pts[36]))
        forehead = (pts[19] + pts[24]) / 2 - [0, 0.6 * iod]
        assert not at(forehead) and not at(pts[8] + [0, 6])  # the forehead, below the chin
        assert not changed[:10].any() and not changed[:, :10].any()  # the top and the side of the crop
        assert 0.03 < float(changed.float().mean()) < 0.3
    # "mouth": the eyes stay the warp's.
    mouth = Generator(cfg.replace(correction="mouth")).eval()
    mouth.load_state_dict(gated.state_dict())
    pts = move(face, Motion(mouth=1.0))
    with torch.no_grad():
        changed = (mouth(sketch_tensor(pts, s), psi, warped) - warped).abs().amax(1)[0] > 1e-4
    centres = [np.round(c).astype(int) for c in (pts[60:68].mean(0), pts[36:42].mean(0), pts[42:48].mean(0))]
    assert [bool(changed[yy, x]) for x, yy in centres] == [True, False, False]
    with pytest.raises(PuppetError, match="correction must be one of"):
        cfg.replace(correction="nose")
