"""``kv-retrieval``: prompts of key-value pairs and a query key; the answer is the query's value.

Groundwork for generative tasks (issue 13): the data and its gold, for a causal language model that
reads the prompt and predicts the answer as its next token.

Generation rule (``np_rng('kv-retrieval', seed, split)``), per prompt:

- ``n_pairs`` pairs (``min_pairs..max_pairs``) of distinct keys drawn from ``n_keys`` key tokens
  ``k0, k1, ...``, each with a value drawn from ``n_values`` value tokens ``v0, v1, ...``
  (values may repeat across pairs); pair j is the words ``key_j value_j ,``;
- then the query: ``? key_q`` with q uniform among the pairs, as the record's second segment
  (``words_b``): a task with ``perturb_segments: [0]`` keeps the question fixed, like a reading
  comprehension task's question, and explains the context.

The answer (``Record.label``, an index into ``label_names`` = the value tokens) is value_q. Gold
rationale (over ``words + words_b``): the matching key in the context and its value, the two words a
model must read (the query key itself is the question, not evidence, and stays 0); every other pair is a distractor.
A value that occurs in several pairs is still gold only at the queried pair.
"""
from __future__ import annotations

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits

SEP, QUERY = ",", "?"


class KeyValueRetrieval(DatasetSource):
    """Prompts of key-value pairs and a query key; the answer is the queried key's value."""

    name = "kv-retrieval"
    params = {"n_train": 20000, "n_test": 1000, "min_pairs": 2, "max_pairs": 6, "n_keys": 16, "n_values": 8}

    def _check(self) -> dict:
        p, where = self.p, f"{self.task_path}: field 'dataset.params."
        for k in self.params:
            if p[k] < (0 if k.startswith("n_t") else 1):
                raise XBenchError(f"{where}{k}' must be a positive integer; got {p[k]!r}")
        if not p["min_pairs"] <= p["max_pairs"] <= p["n_keys"]:
            raise XBenchError(f"{where}max_pairs' must be from min_pairs ({p['min_pairs']}) to n_keys "
                              f"({p['n_keys']}): keys in a prompt are distinct; got {p['max_pairs']}")
        return p

    def load(self, seed: int) -> Splits:
        p = self._check()
        keys = [f"k{i}" for i in range(p["n_keys"])]
        values = [f"v{i}" for i in range(p["n_values"])]
        out = {}
        for split in ("train", "test"):
            rng = np_rng(self.name, seed, split)
            out[split] = [self._prompt(rng, f"{split}-{i}", keys, p["n_values"]) for i in range(p[f"n_{split}"])]
        return Splits(out["train"], out["test"], values, {"keys": keys, "separator": SEP, "query": QUERY})

    def _prompt(self, rng, rid: str, keys: list[str], n_values: int) -> Record:
        p = self.p
        n = int(rng.integers(p["min_pairs"], p["max_pairs"] + 1))
        ks = rng.choice(len(keys), size=n, replace=False)
        vs = rng.integers(n_values, size=n)
        q = int(rng.integers(n))
        words: list[str] = []
        gold: list[int] = []
        for j in range(n):
            words += [keys[int(ks[j])], f"v{int(vs[j])}", SEP]
            gold += [int(j == q), int(j == q), 0]
        gold += [0, 0]
        return Record(rid, words, int(vs[q]), gold, words_b=[QUERY, keys[int(ks[q])]],
                      meta={"answer": f"v{int(vs[q])}", "query_pair": q})
