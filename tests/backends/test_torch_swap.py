"""dropkit_torch.swap_dropout: torch's dropout modules replaced in place, and the report."""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from dropkit_torch import swap_dropout  # noqa: E402

import dropkit  # noqa: E402

TORCH_DROPOUTS = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
)


def encoder(seed=0, layers=2):
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Dropout2d(0.2),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.SELU(),
            torch.nn.FeatureAlphaDropout(0.1),
        )
        self.head = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Dropout(0.3, inplace=True),
            torch.nn.Linear(8 * 4 * 4, 16),
            torch.nn.SELU(),
            torch.nn.AlphaDropout(0.05),
            torch.nn.Linear(16, 10),
        )

    def forward(self, x):
        return self.head(self.features(x))


def torch_dropouts(model):
    return [name for name, m in model.named_modules() if type(m) in TORCH_DROPOUTS]


def cnn(seed=0):
    torch.manual_seed(seed)
    return SmallCNN()


def test_transformer_encoder_every_dropout_module_replaced_attention_reported():
    model = encoder(layers=2)
    before = torch_dropouts(model)
    report = swap_dropout(model, rng=3)
    assert len(before) == 6 and torch_dropouts(model) == []
    assert [e.path for e in report.replaced] == before  # module order
    for path in before:
        new = model.get_submodule(path)
        assert type(new) is dnn.Dropout and new.p == 0.1 and new.training
    assert [e.path for e in report.not_replaced] == ["layers.0.self_attn", "layers.1.self_attn"]
    assert all("dropout_p" in e.note for e in report.not_replaced)
    assert not report.complete
    text = str(report)
    assert "6 replaced, 2 NOT replaced" in text
    line = r"\n  layers\.1\.dropout2 +torch\.nn\.Dropout\(p=0\.1\) -> dropkit_torch\.nn\.Dropout \("
    assert re.search(line + r"stream key=\d+, counter=0\)\n", text)
    assert "NOT replaced" in text and "layers.0.self_attn" in text and repr(report) == text


def test_eval_outputs_unchanged():
    x = torch.randn(4, 5, 16)
    for make, data in ((encoder, x), (cnn, torch.randn(2, 3, 4, 4))):
        model = make().eval()
        with torch.no_grad():
            want = model(data)
        swap_dropout(model, rng=1)
        assert not any(m.training for m in model.modules())
        with torch.no_grad():
            assert torch.equal(model(data), want)


def test_train_mode_uses_dropkit_with_reproducible_seeded_masks():
    x = torch.randn(2, 3, 4, 4)
    outputs = []
    for _ in range(2):
        model = cnn()
        swap_dropout(model, rng=11)
        with torch.no_grad():
            outputs.append([model(x), model(x)])
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[0][1])  # the streams advance
    other = cnn()
    swap_dropout(other, rng=12)
    with torch.no_grad():
        assert not torch.equal(other(x), outputs[0][0])
    # Each layer's stream is spawned from the seed in module order: dropkit's masks.
    model = encoder(layers=1)
    report = swap_dropout(model, rng=dropkit.Generator(5))
    children = dropkit.Generator(5).spawn(3)
    z = torch.randn(4, 16)
    for entry, child in zip(report.replaced, children, strict=True):
        layer = model.get_submodule(entry.path)
        np.testing.assert_array_equal(
            layer(z).numpy(), dropkit.dropout(z.numpy(), 0.1, rng=child.copy())
        )


def test_rng_none_follows_torch_manual_seed():
    x = torch.randn(4, 5, 16)
    model = encoder()
    swap_dropout(model)
    assert all(model.get_submodule(p).stream is None for p in ("layers.0.dropout",))
    with torch.no_grad():
        torch.manual_seed(7)
        first = model(x)
        torch.manual_seed(7)
        again = model(x)
        third = model(x)
    assert torch.equal(first, again) and not torch.equal(first, third)
    assert "rng_key" not in "".join(model.state_dict())


def test_kinds_and_attributes_preserved():
    model = cnn()
    model.head[4].eval()  # one module in eval mode before the swap
    report = swap_dropout(model, rng=0)
    f, h = model.features, model.head
    assert (type(f[2]), type(f[5]), type(h[1]), type(h[4])) == (
        dnn.Dropout2d,
        dnn.FeatureAlphaDropout,
        dnn.Dropout,
        dnn.AlphaDropout,
    )
    assert (f[2].p, f[5].p, h[1].p, h[4].p) == (0.2, 0.1, 0.3, 0.05)
    assert h[1].inplace and not f[2].inplace
    assert f[2].training and not h[4].training
    extra = torch.nn.Sequential(
        torch.nn.Dropout1d(0.4), torch.nn.Dropout3d(0.6), torch.nn.AlphaDropout(0.2, inplace=True)
    )
    notes = [e.note for e in swap_dropout(extra).replaced]
    assert [type(m) for m in extra] == [dnn.Dropout1d, dnn.Dropout3d, dnn.AlphaDropout]
    assert [m.p for m in extra] == [0.4, 0.6, 0.2]
    assert ("out of place" in notes[2]) == (not getattr(extra[2], "inplace", False))
    assert "out of place" not in notes[0]
    assert report.forward_inspected and len(report.replaced) == 4


def test_state_dict_still_loads():
    stock = cnn().state_dict()
    model = cnn(seed=1)
    swap_dropout(model)  # rng=None: no buffers, the stock checkpoint loads strictly
    model.load_state_dict(stock)
    assert torch.equal(model.head[2].weight, stock["head.2.weight"])
    seeded = cnn(seed=1)
    swap_dropout(seeded, rng=4)
    result = seeded.load_state_dict(stock, strict=False)
    assert result.unexpected_keys == []
    assert all(k.rsplit(".", 1)[1] in ("rng_key", "rng_counter") for k in result.missing_keys)
    # A swapped model's own checkpoint resumes its streams.
    x = torch.randn(2, 3, 4, 4)
    seeded(x)
    buf = io.BytesIO()
    torch.save(seeded.state_dict(), buf)
    with torch.no_grad():
        want = seeded(x)
    fresh = cnn(seed=2)
    swap_dropout(fresh, rng=99)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    with torch.no_grad():
        assert torch.equal(fresh(x), want)


def test_idempotent_and_shared_modules_stay_shared():
    shared = torch.nn.Dropout(0.5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), shared, torch.nn.Linear(4, 4), shared)
    report = swap_dropout(model, rng=0)
    assert model[1] is model[3] and type(model[1]) is dnn.Dropout
    assert len(report.replaced) == 1 and "also at 3" in report.replaced[0].note
    layers = list(model)
    again = swap_dropout(model, rng=0)
    assert again.replaced == () and list(model) == layers
    assert [e.path for e in again.already_dropkit] == ["1"]
    assert "already dropkit's" in str(again)


def test_dropkit_generator_not_advanced_torch_generator_shared_numpy_accepted():
    gen = dropkit.Generator(8)
    swap_dropout(cnn(), rng=gen)
    assert gen == dropkit.Generator(8)
    tgen = torch.Generator().manual_seed(0)
    model = cnn()
    swap_dropout(model, rng=tgen)
    assert model.head[1].generator is tgen and model.features[2].generator is tgen
    model = cnn()
    swap_dropout(model, rng=np.random.default_rng(0))
    assert model.head[1].stream is not None


def test_stream_buffers_follow_the_model_device():
    model = cnn().to("meta")
    swap_dropout(model, rng=0)
    assert model.head[1].rng_key.device.type == "meta"
    assert model.features[2].rng_counter.device.type == "meta"


def test_unreplaceable_dropout_is_reported_not_changed():
    class MyDropout(torch.nn.Dropout):
        def forward(self, x):
            return super().forward(x) * 2

    hooked = torch.nn.Dropout(0.1)
    hooked.register_forward_hook(lambda *a: None)
    model = torch.nn.Sequential(
        MyDropout(0.2), hooked, torch.nn.LSTM(4, 4, num_layers=2, dropout=0.25)
    )
    report = swap_dropout(model)
    assert type(model[0]) is MyDropout and model[1] is hooked
    reasons = {e.path: e.note for e in report.not_replaced}
    assert "does not know" in reasons["0"] and "hooks" in reasons["1"]
    assert "RNN" in reasons["2"]


def test_functional_calls_found_by_tracing():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.out = torch.nn.Dropout(0.1)

        def forward(self, x):
            return self.out(self.block(x))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)
            self.attn_dropout = 0.2

        def forward(self, x):
            x = torch.nn.functional.dropout(self.linear(x), 0.3, self.training)
            q = x[:, None, None, :]
            return torch.nn.functional.scaled_dot_product_attention(
                q, q, q, dropout_p=self.attn_dropout
            )[:, 0, 0]

    model = Net()
    report = swap_dropout(model)
    assert report.forward_inspected and "2 functional" in report.forward_code
    calls = [e for e in report.not_replaced if e.what.startswith("F.")]
    assert [(e.path, e.what) for e in calls] == [
        ("block", "F.dropout(p=0.3)"),
        ("block", "F.scaled_dot_product_attention(dropout_p=0.2)"),
    ]
    assert "test_torch_swap.py" in calls[0].note
    assert any(e.what == "Block.attn_dropout = 0.2" for e in report.not_replaced)
    assert type(model.out) is dnn.Dropout
    model(torch.randn(3, 4))  # the traced model still runs (the trace changed nothing)
    skipped = swap_dropout(Net(), trace=False)
    assert not skipped.forward_inspected and "NOT inspected" in str(skipped)


def test_untraceable_forward_is_reported_not_inspected():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.drop(x)
            return x

    model = Branchy()
    report = swap_dropout(model)
    assert type(model.drop) is dnn.Dropout
    assert not report.forward_inspected and not report.complete
    assert report.forward_code.startswith("NOT inspected: torch.fx could not trace")


def test_bad_input_gives_clear_errors_and_changes_nothing():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got list"):
        swap_dropout([torch.nn.Dropout()])
    with pytest.raises(ValueError, match=r"model is itself a torch.nn.Dropout.*dropkit_torch"):
        swap_dropout(torch.nn.Dropout(0.1))
    with pytest.raises(TypeError, match=r"rng must be None.*got str"):
        swap_dropout(cnn(), rng="seed")
    with pytest.raises(TypeError, match=r"rng must be None.*got Tensor"):
        swap_dropout(cnn(), rng=torch.tensor(3))

    model = cnn()
    model.head[4].p = 1.5
    with pytest.raises(ValueError, match=r"head\.4: torch.nn.AlphaDropout has an invalid p"):
        swap_dropout(model)
    assert torch_dropouts(model) == ["features.2", "features.5", "head.1", "head.4"]


def test_a_dropkit_model_is_already_dropkit():
    report = swap_dropout(dnn.Dropout(0.5))
    assert len(report.already_dropkit) == 1 and report.replaced == ()


def test_decoder_attentions_reported():
    torch.manual_seed(0)
    model = torch.nn.Transformer(16, 2, 1, 1, dim_feedforward=32, batch_first=True)
    report = swap_dropout(model)
    assert torch_dropouts(model) == []
    assert [e.path for e in report.not_replaced] == [
        "encoder.layers.0.self_attn",
        "decoder.layers.0.self_attn",
        "decoder.layers.0.multihead_attn",
    ]


def test_the_docs_example_prints_what_the_docs_show(capsys):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "backends.md").read_text()
    code, shown = re.search(
        r"<!-- swap example -->\n```python\n(.*?)```\n\n```text\n(.*?)```", doc, re.S
    ).groups()
    exec(compile(code, "docs/backends.md", "exec"), {})
    assert capsys.readouterr().out == shown


def test_a_container_root_has_no_forward_to_trace():
    blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)])
    report = swap_dropout(blocks)
    assert type(blocks[1]) is dnn.Dropout and report.forward_inspected
    assert report.forward_code == "none: a ModuleList has no forward code"
    assert report.complete
