"""``agreement``: subject-verb agreement across attractors; the answer is ``is`` or ``are``.

For generative tasks (as in SyntaxGym's and CausalGym's agreement suites): a causal language model
reads a sentence's subject and what follows it, and should continue with the verb form that agrees
in number with the subject, not with the nouns in between.

Generation rule (``np_rng('agreement', seed, split)``), per prompt:

- the subject's number: singular or plural, exactly balanced over a split (a shuffled half each);
- optionally a lead-in (``lead_in`` share of prompts): one of a few phrases with no noun in it
  ("i think that", "they said that", "yesterday", ...), so the subject is not always the first word;
- the subject: a determiner, an adjective with probability ``p_adjective``, and the head noun, one of
  20 nouns in the subject's number;
- ``min_attractors..max_attractors`` modifiers, each a prepositional phrase ("near the cabinets")
  or, with probability ``p_relative``, an object relative clause ("that the teachers saw"), each
  attached to the noun before it; each modifier's noun (the *attractor*) has the other number than
  the subject with probability ``p_mismatch``, else the same (every modifier draws its noun and
  number independently).

The answer (``Record.label``, an index into ``label_names`` = ``["is", "are"]``) is ``is`` for a
singular subject, ``are`` for a plural one; ``meta["answer"]`` is it and ``meta["foil"]`` the other
form (contrastive targets). Gold rationale: the subject's head noun alone, the one word that decides
the answer. No other word marks the subject's number: the determiners (the, my,
our, their, his, her), adjectives, prepositions, lead-ins and the relative clauses' verbs (past
tense: "saw", "found") are the same for both numbers, so the determiner is not gold. Changing the
head noun's number flips the answer; changing any other word, an attractor's number included, never
does. The attractors' numbers are correlated with the answer (with ``p_mismatch`` > 0.5 they are
mostly the other number), so with the subject removed they are a statistical hint, never a decision:
a model that agrees with the nearest noun is wrong on every prompt whose last attractor mismatches.
"""
from __future__ import annotations

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits

#: (singular, plural)
NOUNS = [
    ("key", "keys"), ("cabinet", "cabinets"), ("dog", "dogs"), ("cat", "cats"), ("table", "tables"),
    ("door", "doors"), ("teacher", "teachers"), ("student", "students"), ("author", "authors"),
    ("book", "books"), ("car", "cars"), ("house", "houses"), ("box", "boxes"), ("lamp", "lamps"),
    ("picture", "pictures"), ("window", "windows"), ("friend", "friends"), ("painter", "painters"),
    ("child", "children"), ("man", "men"),
]
DETERMINERS = ["the", "my", "our", "their", "his", "her"]
ADJECTIVES = ["old", "new", "small", "large", "red", "green", "famous", "quiet"]
PREPOSITIONS = ["to", "near", "behind", "beside", "of", "with", "under", "above"]
RELATIVE_VERBS = ["saw", "found", "liked", "painted", "moved", "visited"]
LEAD_INS = [["i", "think", "that"], ["they", "said", "that"], ["yesterday"], ["perhaps"],
            ["we", "know", "that"], ["apparently"]]
VERBS = ["is", "are"]  # label 0: singular, 1: plural


class Agreement(DatasetSource):
    """Subject-verb agreement across attractor nouns of the other number; the subject's head noun decides."""

    name = "agreement"
    params = {"n_train": 8000, "n_test": 1000, "min_attractors": 0, "max_attractors": 3,
              "p_mismatch": 0.8, "p_relative": 0.3, "p_adjective": 0.3, "lead_in": 0.3}

    def _check(self) -> dict:
        p, where = self.p, f"{self.task_path}: field 'dataset.params."
        for k in ("n_train", "n_test", "min_attractors", "max_attractors"):
            if not isinstance(p[k], int) or p[k] < 0:
                raise XBenchError(f"{where}{k}' must be a non-negative integer; got {p[k]!r}")
        if p["min_attractors"] > p["max_attractors"]:
            raise XBenchError(f"{where}max_attractors' must be at least min_attractors "
                              f"({p['min_attractors']}); got {p['max_attractors']}")
        for k in ("p_mismatch", "p_relative", "p_adjective", "lead_in"):
            if not 0 <= p[k] <= 1:
                raise XBenchError(f"{where}{k}' must be a probability from 0 to 1; got {p[k]!r}")
        return p

    def load(self, seed: int) -> Splits:
        p = self._check()
        out = {}
        for split in ("train", "test"):
            rng = np_rng(self.name, seed, split)
            n = p[f"n_{split}"]
            plural = rng.permutation([i % 2 for i in range(n)])
            out[split] = [self._prompt(rng, f"{split}-{i}", int(plural[i])) for i in range(n)]
        return Splits(out["train"], out["test"], list(VERBS),
                      {"nouns": [list(x) for x in NOUNS], "determiners": DETERMINERS})

    def _noun_phrase(self, rng, number: int) -> tuple[list[str], int]:
        """(words, index of the head noun in them): determiner, maybe an adjective, noun."""
        words = [DETERMINERS[int(rng.integers(len(DETERMINERS)))]]
        if rng.random() < self.p["p_adjective"]:
            words.append(ADJECTIVES[int(rng.integers(len(ADJECTIVES)))])
        words.append(NOUNS[int(rng.integers(len(NOUNS)))][number])
        return words, len(words) - 1

    def _prompt(self, rng, rid: str, plural: int) -> Record:
        p = self.p
        words: list[str] = []
        if rng.random() < p["lead_in"]:
            words += LEAD_INS[int(rng.integers(len(LEAD_INS)))]
        np_words, head = self._noun_phrase(rng, plural)
        subject = len(words) + head
        words += np_words
        attractors, mismatched = [], 0
        for _ in range(int(rng.integers(p["min_attractors"], p["max_attractors"] + 1))):
            other = bool(rng.random() < p["p_mismatch"])
            mismatched += other
            relative = bool(rng.random() < p["p_relative"])
            words.append("that" if relative else PREPOSITIONS[int(rng.integers(len(PREPOSITIONS)))])
            np_words, head = self._noun_phrase(rng, 1 - plural if other else plural)
            attractors.append(len(words) + head)
            words += np_words
            if relative:
                words.append(RELATIVE_VERBS[int(rng.integers(len(RELATIVE_VERBS)))])
        gold = [int(i == subject) for i in range(len(words))]
        return Record(rid, words, plural, gold, meta={
            "answer": VERBS[plural], "foil": VERBS[1 - plural], "subject": subject,
            "attractors": attractors, "n_mismatched": mismatched})
