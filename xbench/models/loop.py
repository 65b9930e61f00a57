"""The optimisation loop every model xbench trains shares: seeded batch order, one optimiser step
and one scheduler step per batch, on one intra-op thread."""
from __future__ import annotations

from typing import Callable

import torch

from xbench.core.progress import bar

#: Training runs on this many intra-op threads, whatever the process uses. A backward pass splits
#: its float sums across threads, so weights trained on 1 and on 2 threads differ in the last bits
#: (seen: the synthetic-shapes CNN trained in a 1-thread test gave per-example scores 1e-3 apart
#: from the published 2-thread run). Pinned, the cached weights depend only on the config.
#: Forward passes need no pin: their logits are bitwise equal on 1 and 2 threads (measured).
#: Cost: training the default BERT takes 20.8 s instead of 16.4 s, the CNN 4.5 s instead of 3.0 s.
TRAIN_THREADS: int | None = 1


def fit(n: int, epochs: int, batch_size: int, gen: torch.Generator, opt: torch.optim.Optimizer,
        sched: object, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """For each epoch, a permutation of ``range(n)`` from ``gen``, cut into batches of ``batch_size``;
    per batch, ``loss_of(indices)`` is minimised by one step of ``opt`` and of ``sched``.
    ``loss_of`` may draw from ``gen`` too (e.g. masking): draws interleave with the permutations
    in a fixed order, so training is reproducible from the generator's seed. Runs on
    ``TRAIN_THREADS`` intra-op threads; the caller's setting is restored."""
    if TRAIN_THREADS is None:  # unpinned (tests show why it is pinned)
        return _fit(n, epochs, batch_size, gen, opt, sched, loss_of)
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        _fit(n, epochs, batch_size, gen, opt, sched, loss_of)
    finally:
        torch.set_num_threads(before)


def _fit(n: int, epochs: int, batch_size: int, gen: torch.Generator, opt: torch.optim.Optimizer,
         sched: object, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
    for _ in bar(range(epochs), "training", epochs, "epoch"):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            loss = loss_of(order[i:i + batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
