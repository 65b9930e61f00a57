"""The optimisation loop every model xbench trains shares: seeded batch order, one optimiser step
and one scheduler step per batch."""
from __future__ import annotations

from typing import Callable

import torch


def fit(n: int, epochs: int, batch_size: int, gen: torch.Generator, opt: torch.optim.Optimizer,
        sched: object, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """For each epoch, a permutation of ``range(n)`` from ``gen``, cut into batches of ``batch_size``;
    per batch, ``loss_of(indices)`` is minimised by one step of ``opt`` and of ``sched``.
    ``loss_of`` may draw from ``gen`` too (e.g. masking): draws interleave with the permutations
    in a fixed order, so training is reproducible from the generator's seed."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            loss = loss_of(order[i:i + batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
