"""The dropout article's MLP in plain PyTorch with dropkit's layers, compiled.

MNIST-1D (embedded in dropkit, generated offline), net 40-512-256-10 with ReLU
and ``dropkit_torch.nn.Dropout(p=0.5)`` after each hidden layer, SGD with
momentum 0.9, lr 0.05 halved every 75 epochs, L2 1e-3 on the weights, batch
256: the defaults of ``dropkit compare``, written the way a PyTorch user
writes a training script. The model runs under
``torch.compile(fullgraph=True)``: the dropkit op is one node of the graph,
forward and backward, and a graph break would be an error.

Run:  uv run python examples/torch_mlp.py [--epochs 300] [--no-compile]
Needs PyTorch (CPU wheel: ``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from itertools import pairwise

import torch
from dropkit_torch import nn as dnn

from dropkit.experiment.data import load_dataset


def build(sizes: Sequence[int], p: float) -> torch.nn.Sequential:
    """Linear -> ReLU -> Dropout for every hidden layer, then the output layer."""
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in pairwise(sizes[:-1]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU(), dnn.Dropout(p)]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct predictions in evaluation mode."""
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(dim=1) == y).sum().item()
    model.train()
    return correct / len(y)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train, print progress and the test accuracy; return the final numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--p", type=float, default=0.5, help="drop probability, hidden layers")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-compile", action="store_true", help="run eagerly")
    parser.add_argument("--every", type=int, default=25, help="print every N epochs")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)  # initial weights, batch order and dropout masks
    data = load_dataset("mnist1d", train_size=args.train_size)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    model = build([data.n_features, 512, 256, data.n_classes], args.p)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 1e-3}, {"params": rest}], lr=0.05, momentum=0.9
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [75, 150, 225], gamma=0.5)
    forward = model if args.no_compile else torch.compile(model, fullgraph=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    start = time.perf_counter()
    best = 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(y_train))
        total = 0.0
        for i in range(0, len(order), 256):
            idx = order[i : i + 256]
            loss = loss_fn(forward(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        schedule.step()
        test_acc = accuracy(forward, x_test, y_test)
        best = max(best, test_acc)
        if epoch % args.every == 0 or epoch == args.epochs:
            print(
                f"epoch {epoch:4d}  loss {total / len(y_train):.4f}  test acc "
                f"{test_acc:.2%}  ({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    train_acc = accuracy(forward, x_train, y_train)
    print(
        f"final: train acc {train_acc:.2%}, test acc {test_acc:.2%}, best test acc {best:.2%}, "
        f"{time.perf_counter() - start:.1f} s ({'eager' if args.no_compile else 'compiled'})"
    )
    return {"train_acc": train_acc, "test_acc": test_acc, "best_test_acc": best}


if __name__ == "__main__":
    main()
