"""The dropout article's MLP in JAX with dropkit's Dropout, Flax NNX or Equinox + optax.

MNIST-1D (embedded in dropkit, generated offline), net 40-512-256-10 with ReLU
and dropkit dropout (p = 0.5) after each hidden layer, SGD with momentum 0.9,
lr 0.05 halved every 75 epochs, L2 1e-3 on the weights, batch 256: the
defaults of ``dropkit compare``, written the way a JAX user writes a training
script. Each step is one jitted function (``nnx.jit`` or ``eqx.filter_jit``)
whose dropout keys are traced: it compiles once (twice with the smaller last
batch of an epoch), and the backward keeps each mask as packed bits (n / 8
bytes; above 2**22 elements it regenerates them from the keys).

Run:  uv run python examples/jax_mlp.py [--framework nnx|equinox] [--epochs 300]
Needs ``dropkit-jax[flax]`` (NNX) or ``dropkit-jax[equinox]``, and optax.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dropkit.experiment.data import load_dataset

SIZES_HIDDEN = (512, 256)


def optimizer(steps_per_epoch: int, weights: Any) -> optax.GradientTransformation:
    """SGD with momentum 0.9, lr 0.05 halved at epochs 75, 150, 225; L2 1e-3 on ``weights``."""
    boundaries = {75 * k * steps_per_epoch: 0.5 for k in (1, 2, 3)}
    schedule = optax.piecewise_constant_schedule(0.05, boundaries)
    return optax.chain(
        optax.add_decayed_weights(1e-3, mask=weights), optax.sgd(schedule, momentum=0.9)
    )


def _loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# --------------------------------------------------------------------------- Flax NNX


def nnx_trainer(sizes: Sequence[int], p: float, seed: int, steps_per_epoch: int):
    """An NNX model, its jitted step and its evaluation: ``(step, predict)``."""
    from dropkit_jax.nnx import Dropout
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairwise(sizes[:-1])])
            self.drops = nnx.List([Dropout(p, rngs=rngs) for _ in sizes[1:-1]])
            self.out = nnx.Linear(sizes[-2], sizes[-1], rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            for linear, drop in zip(self.hidden, self.drops, strict=True):
                x = drop(jax.nn.relu(linear(x)))
            return self.out(x)

    model = MLP(nnx.Rngs(params=seed, dropout=seed + 1))
    opt = nnx.Optimizer(model, optimizer(steps_per_epoch, _kernel_mask), wrt=nnx.Param)

    @nnx.jit
    def step(model: MLP, opt: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: _loss(m(x), y))(model)
        opt.update(model, grads)
        return loss

    @nnx.jit
    def logits(model: MLP, x: jax.Array) -> jax.Array:
        return model(x)

    def train_step(x: jax.Array, y: jax.Array) -> jax.Array:
        model.train()
        return step(model, opt, x, y)

    def predict(x: jax.Array) -> jax.Array:
        model.eval()
        return logits(model, x)

    return train_step, predict


def _kernel_mask(tree: Any) -> Any:
    """True for weight matrices (2-d leaves), False for biases: L2 on the weights only."""
    return jax.tree.map(lambda leaf: getattr(leaf, "ndim", 0) == 2, tree)


# --------------------------------------------------------------------------- Equinox


def equinox_trainer(sizes: Sequence[int], p: float, seed: int, steps_per_epoch: int):
    """An Equinox model, its jitted step and its evaluation: ``(step, predict)``."""
    import equinox as eqx
    from dropkit_jax.equinox import Dropout

    class MLP(eqx.Module):
        layers: list[eqx.nn.Linear]
        drops: list[Dropout]

        def __init__(self, key: jax.Array) -> None:
            keys = jax.random.split(key, len(sizes) - 1)
            self.layers = [
                eqx.nn.Linear(a, b, key=k) for (a, b), k in zip(pairwise(sizes), keys, strict=True)
            ]
            self.drops = [Dropout(p) for _ in sizes[1:-1]]

        def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
            count = len(self.drops)
            keys = [None] * count if key is None else jax.random.split(key, count)
            for linear, drop, k in zip(self.layers, self.drops, keys, strict=False):
                x = drop(jax.nn.relu(jax.vmap(linear)(x)), key=k)  # one mask for the batch
            return jax.vmap(self.layers[-1])(x)

    model_key, state = jax.random.split(jax.random.key(seed))
    model = MLP(model_key)
    tx = optimizer(steps_per_epoch, _kernel_mask)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model: MLP, opt_state: Any, x: jax.Array, y: jax.Array, key: jax.Array):
        loss, grads = eqx.filter_value_and_grad(lambda m: _loss(m(x, key=key), y))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    evaluate = eqx.filter_jit(lambda model, x: model(x))
    box: dict[str, Any] = {"model": model, "opt": opt_state, "key": state}

    def train_step(x: jax.Array, y: jax.Array) -> jax.Array:
        box["key"], key = jax.random.split(box["key"])
        box["model"], box["opt"], loss = step(box["model"], box["opt"], x, y, key)
        return loss

    def predict(x: jax.Array) -> jax.Array:
        return evaluate(eqx.nn.inference_mode(box["model"]), x)

    return train_step, predict


TRAINERS: dict[str, Callable[..., Any]] = {"nnx": nnx_trainer, "equinox": equinox_trainer}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train, print progress and the test accuracy; return the final numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=sorted(TRAINERS), default="nnx")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--p", type=float, default=0.5, help="drop probability, hidden layers")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=25, help="print every N epochs")
    args = parser.parse_args(argv)
    for name in ("epochs", "every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0.0 <= args.p <= 1.0:  # (NaN fails too)
        parser.error(f"--p is the drop probability and must be in [0, 1], got {args.p}")
    if args.train_size is not None and not 1 <= args.train_size <= 4000:
        parser.error(f"--train-size must be between 1 and 4000 (MNIST-1D), got {args.train_size}")

    data = load_dataset("mnist1d", train_size=args.train_size)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    sizes = [data.n_features, *SIZES_HIDDEN, data.n_classes]
    n = len(y_train)
    steps_per_epoch = -(-n // 256)
    train_step, predict = TRAINERS[args.framework](sizes, args.p, args.seed, steps_per_epoch)

    def accuracy(x: jax.Array, y: jax.Array) -> float:
        return float(jnp.mean(jnp.argmax(predict(x), axis=1) == y))

    order_key = jax.random.key(args.seed + 2)
    start = time.perf_counter()
    best = test_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        order_key, sub = jax.random.split(order_key)
        order = jax.random.permutation(sub, n)
        losses = [
            train_step(x_train[idx], y_train[idx]) * len(idx)
            for idx in (order[i : i + 256] for i in range(0, n, 256))
        ]
        test_acc = accuracy(x_test, y_test)
        best = max(best, test_acc)
        if epoch % args.every == 0 or epoch == args.epochs:
            print(
                f"epoch {epoch:4d}  loss {float(sum(losses)) / n:.4f}  test acc {test_acc:.2%}  "
                f"({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    train_acc = accuracy(x_train, y_train)
    print(
        f"final ({args.framework}): train acc {train_acc:.2%}, test acc {test_acc:.2%}, best "
        f"test acc {best:.2%}, {time.perf_counter() - start:.1f} s"
    )
    return {"train_acc": train_acc, "test_acc": test_acc, "best_test_acc": best}


if __name__ == "__main__":
    main()
