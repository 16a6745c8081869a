"""The training and sampling fast paths compute the same values and gradients as plain autograd."""

import pytest
import torch
from torch.nn import functional as F

from tabsynth.models.gan_networks import Discriminator, Generator
from tabsynth.models.vae_networks import VAENet
from tabsynth.transform import Span
from tabsynth.transform.layout import SpanLayout, _SpanActivation, gumbel_noise

SPANS = [("c", 1), ("d", 10), ("d", 9), ("c", 1), ("d", 3), ("d", 16), ("d", 2), ("d", 42), ("c", 1), ("d", 1)]


def _layout(sizes=SPANS) -> SpanLayout:
    spans, start = [], 0
    for kind, n in sizes:
        spans.append(Span(start, start + n, "continuous" if kind == "c" else "discrete", "x", "category"))
        start += n
    lay = SpanLayout(spans, torch.device("cpu"))
    # the tests run in float64: cast the layout's float tables too
    lay.seg_sum, lay.disc_weight = lay.seg_sum.double(), lay.disc_weight.double()
    for b in lay.buckets:
        b.pad_bias = b.pad_bias.double()
    if lay.buckets:
        lay.pad_bias = lay.pad_bias.double()
    return lay


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


def test_span_activation_matches_per_span_softmax_and_tanh():
    lay = _layout()
    logits = torch.randn(7, lay.dim, requires_grad=True)
    noise = gumbel_noise(logits.detach())
    ref = []
    for s in lay.spans:
        block = logits[:, s.start:s.end]
        ref.append(torch.tanh(block) if s.kind == "continuous"
                   else torch.softmax((block + noise[:, s.start:s.end]) / 0.2, dim=1))
    ref = torch.cat(ref, dim=1)
    out = _SpanActivation.apply(logits, noise, lay, 0.2)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: _SpanActivation.apply(x, noise, lay, 0.2), (logits,))


def test_hard_activation_is_one_hot_per_group():
    lay = _layout()
    out = lay.activate(torch.randn(500, lay.dim), hard=True, generator=torch.Generator().manual_seed(0))
    for s in lay.disc_spans:
        block = out[:, s.start:s.end]
        assert torch.equal(block.sum(1), torch.ones(500)) and set(block.unique().tolist()) <= {0.0, 1.0}


def test_group_cross_entropy_matches_per_span_cross_entropy():
    lay = _layout()
    logits = torch.randn(9, lay.dim)
    target = lay.activate(torch.randn(9, lay.dim), hard=True)
    ref = sum(F.cross_entropy(logits[:, s.start:s.end], target[:, s.start:s.end].argmax(1), reduction="none")
              for s in lay.disc_spans)
    assert torch.allclose(lay.group_cross_entropy(logits, target), ref, atol=1e-10)


@pytest.mark.parametrize("hidden", [(32, 24), (16,), (8, 8, 8)])
def test_generator_split_pass_matches_dense_pass(hidden):
    gen = Generator(12 + 9, hidden, 14)
    noise, index = torch.randn(40, 12), torch.randint(0, 9, (40,))
    dense = torch.cat([noise, F.one_hot(index, 9).double()], dim=1)
    w = torch.randn(40, 14)
    grads = [torch.autograd.grad((pass_() * w).sum(), list(gen.parameters()))
             for pass_ in (lambda: gen(dense), lambda: gen.forward_split(noise, index))]
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(*grads))
    gen.eval()
    with torch.no_grad():  # the inference pass folds BatchNorm's running statistics into the weights
        assert torch.allclose(gen(dense), gen.forward_split(noise, index), atol=1e-10)


def test_critic_penalty_matches_double_backward():
    critic = Discriminator(12, (32, 16), pac=4).eval()  # eval: the same (no) dropout on both sides
    packs, mixed = torch.randn(6, 48), torch.randn(3, 48)
    scores, grad = critic.wgan_terms(packs, mixed)
    x = mixed.clone().requires_grad_(True)
    ref_grad = torch.autograd.grad(critic(x.reshape(-1, 12)).sum(), x, create_graph=True)[0]
    ref_scores = critic(packs.reshape(-1, 12))
    assert torch.allclose(scores, ref_scores) and torch.allclose(grad, ref_grad)
    assert torch.allclose(critic.input_gradient(mixed), ref_grad)

    def loss(s, g):
        return s.mean() + ((g.norm(2, dim=1) - 1) ** 2).mean()

    params = list(critic.parameters())
    ours = torch.autograd.grad(loss(scores, grad), params)
    ref = torch.autograd.grad(loss(ref_scores, ref_grad), params)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(ours, ref))


@pytest.mark.parametrize("sizes", [SPANS, [("c", 1), ("c", 1)], [("d", 3), ("d", 5)]])
def test_vae_fused_loss_matches_autograd_loss(sizes):
    lay = _layout(sizes)
    net = VAENet(lay.dim, 8, (16,), (16,), lay, 2.0)
    with torch.no_grad():
        net.sigma.sigma.uniform_(0.05, 0.9)
    x = lay.activate(torch.randn(30, lay.dim), hard=True)
    if len(lay.cont_idx):
        x[:, lay.cont_idx] = torch.rand(30, len(lay.cont_idx)) * 2 - 1
    eps, w = torch.randn(30, 8), torch.rand(30)
    params = [p for p in net.parameters() if p.requires_grad]  # sigma is frozen without scalars
    out = []
    for fused in (False, True):
        rec, kl = net(x, eps, fused=fused)
        grads = torch.autograd.grad(((rec + kl) * w).sum(), params, allow_unused=True)
        out.append((rec, kl, grads))
    (r1, k1, g1), (r2, k2, g2) = out
    assert torch.allclose(r1, r2, atol=1e-10) and torch.allclose(k1, k2)
    assert all((a is None and b is None) or torch.allclose(a, b, atol=1e-10) for a, b in zip(g1, g2))


def test_generator_pass_without_graph_in_training_mode_matches_module():
    """The critic step's fake rows: batch statistics, and the same running averages afterwards."""
    gen, twin = Generator(12 + 9, (32, 24), 14), Generator(12 + 9, (32, 24), 14)
    twin.load_state_dict(gen.state_dict())
    noise, index = torch.randn(40, 12), torch.randint(0, 9, (40,))
    with torch.no_grad():
        ref = twin(torch.cat([noise, F.one_hot(index, 9).double()], dim=1))
        out = gen.forward_split(noise, index)
    assert torch.allclose(out, ref, atol=1e-10)
    for (name, a), b in zip(gen.state_dict().items(), twin.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), atol=1e-12), name


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_dropout_mask_has_dropouts_distribution(p):
    from tabsynth.models.gan_networks import dropout_mask

    torch.manual_seed(0)
    like = torch.empty(400, 250)
    mask = dropout_mask(like, p)
    assert mask.shape == like.shape and mask.dtype == like.dtype
    assert set(mask.unique().tolist()) == {0.0, 1.0 / (1.0 - p)}
    dropped = (mask == 0).double()
    assert abs(float(dropped.mean()) - p) < 0.01  # 100,000 draws: sd ~0.0016
    # neighbouring elements (bits of one random word at p=0.5) are independent
    corr = torch.corrcoef(torch.stack([dropped.view(-1)[:-1], dropped.view(-1)[1:]]))[0, 1]
    assert abs(float(corr)) < 0.02
    assert not torch.equal(mask, dropout_mask(like, p))  # a fresh draw each call
    assert torch.equal(dropout_mask(like, 1.0), torch.zeros_like(like))


@pytest.mark.parametrize("sizes,compress", [(SPANS, (16, 12)), ([("c", 1), ("c", 1)], (16,)), ([("d", 3), ("d", 5)], ())])
def test_vae_hand_written_gradients_equal_autograds(sizes, compress):
    """The fp32 training loop's loss_and_grads: autograd's values and gradients of the batch mean, bit for bit."""
    lay = _layout(sizes)
    net = VAENet(lay.dim, 8, compress, (16, 8), lay, 2.0)
    with torch.no_grad():
        net.sigma.sigma.uniform_(0.05, 0.9)
    x = lay.activate(torch.randn(30, lay.dim), hard=True)
    if len(lay.cont_idx):
        x[:, lay.cont_idx] = torch.rand(30, len(lay.cont_idx)) * 2 - 1
    eps = torch.randn(30, 8)
    rec, kl = net(x, eps, fused=True)
    ((rec + kl).sum() / len(x)).backward()
    ref = [(p.grad.clone() if p.grad is not None else None) for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    rec2, kl2 = net.loss_and_grads(x, eps)
    assert torch.equal(rec.detach(), rec2) and torch.equal(kl.detach(), kl2)
    for (name, p), r in zip(net.named_parameters(), ref):
        assert (p.grad is None and r is None) or torch.equal(p.grad, r), name
