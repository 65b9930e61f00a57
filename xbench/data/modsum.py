"""``modular-sum``: two operand words among filler; the answer is their sum modulo ``n_values``.

For generative tasks: an answer that is a pure *interaction* of two context words. Neither operand
alone says anything about the answer, so explainers that add up single-word effects (one word
added to an empty prompt, or one word removed at a time and the effects summed) and those that see
the pair's interaction tell apart here.

Generation rule (``np_rng('modular-sum', seed, split)``), per prompt:

- the answer r: uniform over ``0..n_values-1``, exactly balanced over a split (a shuffled, cycled
  list of all values);
- the first operand a: uniform over ``0..n_values-1``, independent of r; the second b = (r - a) mod
  ``n_values``. So a and b are independent and uniform, and r = (a + b) mod ``n_values``;
- ``min_filler..max_filler`` filler words drawn i.i.d. from a neutral vocabulary, whatever the
  answer; the operands (the words ``d<a>``, ``d<b>``) go in at uniformly random positions (so either
  may come first); the prompt ends with ``=``.

The answer (``Record.label``, an index into ``label_names`` = ``r0, r1, ...``) is ``r<r>``
(``meta["answer"]``); ``meta["foil"]`` is ``r<(r + 1) mod n_values>``, the answer had either operand
been one more. Gold rationale: the two operand words, exactly the words that decide the answer.
Why neither decides alone: given a alone, b is still uniform and independent of a, so r = (a + b)
mod ``n_values`` is uniform whatever a is: p(r | a) = p(r | b) = p(r) = 1/``n_values``. An ideal
model's probability of the answer is then 1/``n_values`` with no operand, with either one alone, and
1 with both: replacing one operand (by [MASK]) takes the whole effect away, and putting one back
into a prompt that lacks both adds nothing (the interaction is the whole effect; every single-word
marginal effect is 0 on average). Filler words and ``=`` never matter.
"""
from __future__ import annotations

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits

FILLER = """the a of and to in is it that was for on are with as his they be at one have this from
or had by word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing
see him two has look more day could go come did number sound no most people my over know water than
call first who may down side been now find""".split()
EQUALS = "="


class ModularSum(DatasetSource):
    """Two operand words among filler; the answer is their sum modulo n_values (a pure interaction)."""

    name = "modular-sum"
    params = {"n_train": 8000, "n_test": 1000, "n_values": 4, "min_filler": 4, "max_filler": 10}

    def _check(self) -> dict:
        p, where = self.p, f"{self.task_path}: field 'dataset.params."
        for k in self.params:
            if not isinstance(p[k], int) or p[k] < 0:
                raise XBenchError(f"{where}{k}' must be a non-negative integer; got {p[k]!r}")
        if p["n_values"] < 2:
            raise XBenchError(f"{where}n_values' must be at least 2 (one value leaves nothing to "
                              f"decide); got {p['n_values']}")
        if p["min_filler"] > p["max_filler"]:
            raise XBenchError(f"{where}max_filler' must be at least min_filler ({p['min_filler']}); "
                              f"got {p['max_filler']}")
        return p

    def load(self, seed: int) -> Splits:
        p = self._check()
        m = p["n_values"]
        out = {}
        for split in ("train", "test"):
            rng = np_rng(self.name, seed, split)
            n = p[f"n_{split}"]
            answers = rng.permutation([i % m for i in range(n)])
            out[split] = [self._prompt(rng, f"{split}-{i}", int(answers[i])) for i in range(n)]
        return Splits(out["train"], out["test"], [f"r{i}" for i in range(m)],
                      {"operands": [f"d{i}" for i in range(m)], "filler": FILLER, "end": EQUALS})

    def _prompt(self, rng, rid: str, r: int) -> Record:
        p, m = self.p, self.p["n_values"]
        a = int(rng.integers(m))
        b = (r - a) % m
        words = [FILLER[int(i)] for i in rng.integers(len(FILLER), size=int(rng.integers(p["min_filler"],
                                                                                          p["max_filler"] + 1)))]
        gold = [0] * len(words)
        positions = []
        for v in (a, b):
            pos = int(rng.integers(len(words) + 1))
            words.insert(pos, f"d{v}")
            gold.insert(pos, 1)
            positions = [q + (q >= pos) for q in positions] + [pos]
        words.append(EQUALS)
        gold.append(0)
        return Record(rid, words, r, gold, meta={"answer": f"r{r}", "foil": f"r{(r + 1) % m}",
                                                 "operands": [a, b], "positions": positions})
