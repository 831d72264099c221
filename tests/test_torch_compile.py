"""fastctc.torch under torch.compile(fullgraph=True): a small model trained a few steps.

The loss is a custom op (``torch.ops.fastctc.ctc_loss``), so Dynamo traces model and loss as
one graph; the losses equal eager fastctc and ``torch.nn.CTCLoss``. The cold case (fastctc's
first call in the process inside a compiled function, which used to crash in Numba's
dispatcher) runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import fastctc.torch as ft

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="compiles models; too slow without JIT"
)

T, N, C, D = 8, 3, 5, 6

# the training run shared by this file and the cold subprocess (kept tiny: compiling is slow)
TRAIN = """
import torch

def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 6, generator=g)
    targets = torch.tensor([[1, 2, 2], [3, 4, 0], [4, 0, 0]])
    il, tl = torch.tensor([8, 7, 6]), torch.tensor([3, 2, 1])
    torch.manual_seed(seed)
    model = torch.nn.Linear(6, 5)
    return model, x, targets, il, tl

def train(crit, backend=None, steps=3):
    model, x, targets, il, tl = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def step(x):
        return crit(model(x).log_softmax(-1), targets, il, tl)

    if backend is not None:
        step = torch.compile(step, backend=backend, fullgraph=True)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = step(x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
"""
_ns: dict = {}
exec(TRAIN, _ns)
train, make = _ns["train"], _ns["make"]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_training_equals_eager_and_torch():
    eager = train(ft.CTCLoss())
    ref = train(torch.nn.CTCLoss())
    compiled = train(ft.CTCLoss(), backend="aot_eager")
    assert eager[-1] < eager[0]  # it trains
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=0)
    torch.testing.assert_close(eager, ref, rtol=1e-5, atol=0)


@pytest.mark.slow
def test_inductor_training_equals_eager():
    eager = train(ft.CTCLoss())
    compiled = train(ft.CTCLoss(), backend="inductor", steps=2)
    torch.testing.assert_close(compiled, eager[:2], rtol=1e-5, atol=0)


def test_no_graph_breaks():
    model, x, targets, il, tl = make()
    crit = ft.CTCLoss()

    def step(x):
        return crit(model(x).log_softmax(-1), targets, il, tl)

    info = torch._dynamo.explain(step)(x)
    assert info.graph_break_count == 0 and info.graph_count == 1
    assert any(
        "fastctc.ctc_loss" in str(node.target) for g in info.graphs for node in g.graph.nodes
    )


def test_cold_process_first_call_compiled():
    # nothing of fastctc runs before the compiled step (this used to crash in Numba)
    code = (
        TRAIN
        + "import fastctc.torch as ft\n"
        + "from torch._dynamo.utils import counters\n"
        + "losses = train(ft.CTCLoss(), backend='aot_eager', steps=2)\n"
        + "print(json.dumps({'losses': losses, 'breaks': sum(counters['graph_break'].values())}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["breaks"] == 0
    torch.testing.assert_close(res["losses"], train(ft.CTCLoss(), steps=2), rtol=1e-5, atol=0)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_compiled_options_equal_eager(reduction):
    # float64, concatenated targets, zero_infinity with one impossible target, blank=C-1
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, C, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 1, 0, 0, 1, 2, 3, 2])  # lengths 2, 3, 3
    il, tl = torch.tensor([4, 4, 3]), torch.tensor([2, 3, 3])  # last one: 3 frames, repeat

    def loss(x, zero_infinity):
        return ft.ctc_loss(
            x.log_softmax(-1), targets, il, tl, C - 1, reduction, zero_infinity=zero_infinity
        )

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    for zero_infinity in (True, False):
        results = []
        for fn in (loss, compiled):
            x = logits.clone().requires_grad_()
            out = fn(x, zero_infinity)
            out.sum().backward()
            results.append((out.detach(), x.grad))
        (l0, g0), (l1, g1) = results
        assert l1.dtype == torch.float64 and l1.shape == l0.shape
        torch.testing.assert_close(l1, l0, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(g1, g0, rtol=0, atol=0, equal_nan=True)
        ref = torch.nn.functional.ctc_loss(
            logits.log_softmax(-1), targets, il, tl, C - 1, reduction, zero_infinity
        )
        torch.testing.assert_close(l1, ref, rtol=1e-10, atol=0)


def test_op_is_registered_and_double_backward_refused():
    assert hasattr(torch.ops.fastctc, "ctc_loss")
    lp = torch.randn(5, 2, 4, dtype=torch.float64).log_softmax(-1).requires_grad_()
    loss = ft.ctc_loss(lp, torch.tensor([[1, 2], [3, 3]]), [5, 5], [2, 2])
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(loss, lp, create_graph=True)
