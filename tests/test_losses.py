"""The losses: VGG weight loading (files the test writes, in the real key layouts), the GAN terms, and the
combined meta-learning objective's gradients. The content-loss networks here have random weights."""

import warnings

import pytest
import torch
from torch import nn

from models import Discriminator, Embedder, Generator, vgg
from models import losses as L
from puppet.errors import PuppetError


def _full_vgg19_features_state_dict() -> dict:
    """torchvision's vgg19 key layout for all of `features` (the classifier's 120 M parameters left out)."""
    net = vgg._features(vgg._VGG19_CFG, last=10**6)
    return {f"features.{k}": v for k, v in net.state_dict().items()}


def _vgg_face_dag_state_dict() -> dict:
    """Oxford vgg_face_dag's key layout for all 13 convs (fc6..fc8 left out: 120 M parameters)."""
    net = vgg._features(vgg._VGG16_CFG, last=10**6)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    names = vgg._vggface_names()
    assert len(convs) == len(names) == 13
    sd = {}
    for name, c in zip(names, convs):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = c.weight.detach(), c.bias.detach()
    return sd


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    sd19, sdface = _full_vgg19_features_state_dict(), _vgg_face_dag_state_dict()
    torch.save(sd19, d / vgg.VGG19_FILE)
    # vgg_face_dag.pth dates from 2018: torch's legacy (pre-zip) format, which weights_only also reads.
    torch.save(sdface, d / vgg.VGGFACE_FILE, _use_new_zipfile_serialization=False)
    return d, sd19, sdface


def test_layers_are_the_papers():
    v19, vface = vgg.vgg19_features(), vgg.vggface_features()
    assert all(isinstance(v19[i], nn.ReLU) for i in vgg.VGG19_LAYERS) and len(v19) == 30
    assert all(isinstance(vface[i], nn.ReLU) for i in vgg.VGGFACE_LAYERS) and len(vface) == 26
    # Each is the ReLU right after the first conv of a stage: relu1_1 .. relu5_1.
    assert [v19[i - 1].out_channels for i in vgg.VGG19_LAYERS] == [64, 128, 256, 512, 512]
    assert [v19[i - 2] for i in vgg.VGG19_LAYERS[1:]] == [v19[4], v19[9], v19[18], v19[27]]  # max-pools
    assert all(isinstance(vface[i - 2], nn.MaxPool2d) for i in vgg.VGGFACE_LAYERS[1:])


def test_vgg_loaders_read_the_real_layouts(weight_files, monkeypatch):
    d, sd19, sdface = weight_files
    net = vgg.load_vgg19(d / vgg.VGG19_FILE)
    assert torch.equal(net[28].weight, sd19["features.28.weight"])
    assert torch.equal(net[0].bias, sd19["features.0.bias"])
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    face = vgg.load_vggface(str(d / vgg.VGGFACE_FILE))
    assert torch.equal(face[24].weight, sdface["conv5_1.weight"])
    assert torch.equal(face[17].bias, sdface["conv4_1.bias"])
    # None: torch's hub cache ($TORCH_HOME/hub/checkpoints), where torchvision puts vgg19-dcbb9e9d.pth.
    home = d.parent / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in (vgg.VGG19_FILE, vgg.VGGFACE_FILE):
        (home / "hub" / "checkpoints" / name).write_bytes((d / name).read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert torch.equal(vgg.load_vgg19()[0].weight, sd19["features.0.weight"])
    assert torch.equal(vgg.load_vggface()[0].weight, sdface["conv1_1.weight"])


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_vgg_loaders_refuse_wrong_files(weight_files, tmp_path, monkeypatch):
    d, sd19, _ = weight_files
    # Missing: names the file and where to get it.
    with pytest.raises(PuppetError) as err:
        vgg.load_vgg19(tmp_path / "nope.pth")
    msg = _one_line(err)
    assert "nope.pth" in msg and vgg.VGG19_URL in msg and "not found" in msg
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(PuppetError) as err:
        vgg.load_vggface()
    msg = _one_line(err)
    assert str(tmp_path / "empty_home" / "hub" / "checkpoints" / vgg.VGGFACE_FILE) in msg
    assert vgg.VGGFACE_URL in msg
    # The other network's file: a mismatched state dict.
    with pytest.raises(PuppetError) as err:
        vgg.load_vgg19(d / vgg.VGGFACE_FILE)
    msg = _one_line(err)
    assert "not torchvision VGG19 ImageNet weights" in msg and "features.0.weight" in msg
    assert vgg.VGG19_URL in msg
    with pytest.raises(PuppetError) as err:
        vgg.load_vggface(d / vgg.VGG19_FILE)
    assert "conv1_1.weight" in _one_line(err) and vgg.VGGFACE_URL in str(err.value)
    # Right keys, wrong shapes (e.g. a VGG16 file under VGG19's name: conv4_4 vs pool).
    bad = dict(sd19)
    bad["features.28.weight"] = torch.zeros(512, 256, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(PuppetError) as err:
        vgg.load_vgg19(tmp_path / "bad.pth")
    assert "features.28.weight" in _one_line(err) and "(512, 512, 3, 3)" in str(err.value)
    # Not a state dict at all; and a pickle of objects, which weights_only refuses to run.
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(PuppetError) as err:
        vgg.load_vggface(tmp_path / "text.pth")
    assert "not a readable" in _one_line(err)
    torch.save({"net": nn.Linear(2, 2)}, tmp_path / "pickle.pth")
    with pytest.raises(PuppetError) as err:
        vgg.load_vgg19(tmp_path / "pickle.pth")
    assert "not a readable" in _one_line(err)


def test_random_weights_only_when_asked_and_warn():
    with pytest.warns(UserWarning, match="RANDOM weights"):
        vgg.load_vgg19("random")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        vgg.load_vggface("random")


def test_input_normalisation():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # R=-1 (0), G=0 (0.5), B=1 (1.0)
    n19 = vgg.normalize_vgg19(x).flatten()
    expect = [(0.0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]
    torch.testing.assert_close(n19, torch.tensor(expect))
    nface = vgg.normalize_vggface(x).flatten()
    torch.testing.assert_close(nface, torch.tensor([0.0, 127.5, 255.0]) - torch.tensor(vgg.VGGFACE_MEAN))


def test_gan_terms_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.0])
    assert L.hinge_d_loss(real, fake).item() == pytest.approx(1.0)  # (0 + 1)/2 + (0 + 1)/2
    assert L.adversarial_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)
    # Feature matching and the embedding match: zero for equal features, growing linearly (L1) with the gap.
    fr = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 5)]
    ff = [torch.ones(2, 3, 4, 4), torch.full((2, 5), -2.0)]
    assert L.feature_matching_loss(fr, fr).item() == 0
    one = L.feature_matching_loss(fr, ff).item()
    assert one > 0 and L.feature_matching_loss(fr, [2 * f for f in ff]).item() == pytest.approx(2 * one)
    assert L.embedding_match_loss(torch.ones(2, 8), torch.ones(2, 8)).item() == 0
    m = L.embedding_match_loss(torch.ones(2, 8), torch.zeros(2, 8)).item()
    tripled = L.embedding_match_loss(3 * torch.ones(2, 8), torch.zeros(2, 8)).item()
    assert m > 0 and tripled == pytest.approx(3 * m)
    # The match trains E only: W is detached (D minimises its hinge loss alone); per-frame embeddings
    # (B, K, C) are matched each to their video's W row.
    w = torch.ones(2, 8, requires_grad=True)
    e = torch.zeros(2, 3, 8, requires_grad=True)
    L.embedding_match_loss(w, e).backward()
    assert w.grad is None and e.grad is not None and bool((e.grad != 0).all())


@pytest.fixture(scope="module")
def content():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return L.ContentLoss(vgg19="random", vggface="random")


def test_content_loss(content):
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1  # relu5_1 at 2x2
    assert content(a, a).item() == 0
    t19, tface = content.terms(a, b)
    assert t19 > 0 and tface > 0 and torch.isfinite(t19 + tface)
    torch.testing.assert_close(content(a, b), t19 + tface)


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "a parameter is outside the graph"
    assert all(torch.isfinite(g).all() for g in grads)
    return float(sum(g.abs().sum() for g in grads))


def test_meta_learning_objective_reaches_every_network(content):
    """One meta-learning step on a tiny batch: K frames -> e_hat -> psi = P e_hat -> G -> the losses."""
    torch.manual_seed(0)
    b, k, s = 2, 2, 64
    E, G, D = Embedder("tiny"), Generator("tiny"), Discriminator("tiny", num_videos=4)
    x_k, y_k = torch.rand(b, k, 3, s, s) * 2 - 1, torch.rand(b, k, 3, s, s) * 2 - 1
    x_t, y_t = torch.rand(b, 3, s, s) * 2 - 1, torch.rand(b, 3, s, s) * 2 - 1
    i = torch.tensor([1, 3])

    e_frames = E.frame_embeddings(x_k, y_k)
    fake = G(y_t, G.psi_from_embedding(e_frames.mean(1)))
    terms = L.generator_losses(D, content, fake, x_t, y_t, i=i, e_frames=e_frames)
    assert set(terms) == {"content", "adv", "fm", "mch", "total"}
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    for net in (E, G, D):
        assert _grad_norm(net) > 0
    assert G.P.weight.grad.abs().sum() > 0
    assert D.W.weight.grad[[1, 3]].abs().sum() > 0 and D.W.weight.grad[[0, 2]].abs().sum() == 0

    D.zero_grad()
    d_terms = L.discriminator_losses(D, fake, x_t, y_t, i=i)
    assert all(torch.isfinite(v) for v in d_terms.values())
    assert float(d_terms["margin"]) == pytest.approx(float(d_terms["real"] - d_terms["fake"]), abs=1e-5)
    d_terms["total"].backward()
    assert _grad_norm(D) > 0


def test_fine_tuning_objective(content):
    """Fine-tuning: psi' a free parameter, w' = w0 + e_hat, no embedding match."""
    torch.manual_seed(0)
    s = 64
    G, D = Generator("tiny"), Discriminator("tiny", num_videos=2)
    psi = nn.Parameter(0.1 * torch.randn(1, G.n_adain))
    w = (D.w0 + torch.randn(G.cfg.emb_dim)).detach()[None]
    x, y = torch.rand(1, 3, s, s) * 2 - 1, torch.rand(1, 3, s, s) * 2 - 1
    terms = L.generator_losses(D, content, G(y, psi), x, y, w=w)
    assert set(terms) == {"content", "adv", "fm", "total"}
    terms["total"].backward()
    assert psi.grad is not None and psi.grad.abs().sum() > 0 and torch.isfinite(psi.grad).all()
