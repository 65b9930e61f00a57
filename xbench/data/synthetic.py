"""``synthetic-sentiment``: sentences whose label is decided by planted signal words only.

Each sentence is a run of neutral filler words drawn i.i.d. from the same
distribution whatever the label. Into it, at uniformly random positions, go m
signal words of the label's polarity and m - 1 of the opposite polarity, with m
drawn from ``min_signal..max_signal``: the label is the majority polarity, by a
margin of exactly one. The gold rationale is the positions of the m majority
words. The m - 1 minority words are counter-evidence, not rationale.

No filler word carries information about the label, so an accurate model must use
the signal words; and because the margin is one, every majority word is needed
(removing any one of them leaves a tie). That makes plausibility on this task a
test of correctness rather than of taste, and it separates signed explainers
(which score counter-evidence negative) from unsigned ones (which cannot tell
evidence from counter-evidence).
"""
from __future__ import annotations

from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits

POSITIVE = [
    "good", "great", "excellent", "wonderful", "superb", "delightful", "brilliant",
    "charming", "lovely", "fantastic", "moving", "terrific",
]
NEGATIVE = [
    "bad", "awful", "terrible", "dreadful", "boring", "dull", "poor", "horrible",
    "lousy", "tedious", "clumsy", "mediocre",
]
NEUTRAL = """
the a an this that these those it its they them he she his her we our you your
film movie story plot actor actress director scene scenes script cast camera music
score ending beginning character characters dialogue screen studio audience critic
year week day night city house car road train table window door book letter phone
and or but so then also just still even only very quite rather almost often
is was are were be been has had have does did will would can could might
in on at by for with from about into over under after before during between
red blue green tall short old new young long small large early late
walks talks runs looks seems feels turns opens closes moves waits watches sees
paris london river mountain garden kitchen office school hotel station market
""".split()


class SyntheticSentiment(DatasetSource):
    """Generated sentences; planted signal words decide the label by a majority of one."""

    name = "synthetic-sentiment"
    params = {
        "n_train": 4000,
        "n_test": 1000,
        "min_words": 6,
        "max_words": 18,
        "min_signal": 1,
        "max_signal": 3,
    }

    def load(self, seed: int) -> Splits:
        p = self.p
        if not (1 <= p["min_signal"] <= p["max_signal"]):
            raise ValueError("need 1 <= min_signal <= max_signal")
        if not (1 <= p["min_words"] <= p["max_words"]):
            raise ValueError("need 1 <= min_words <= max_words")
        out = {}
        for split, n in (("train", p["n_train"]), ("test", p["n_test"])):
            rng = np_rng("synthetic-sentiment", seed, split)
            out[split] = [self._sentence(rng, f"{split}-{i}") for i in range(n)]
        return Splits(out["train"], out["test"], ["negative", "positive"],
                      {"signal_words": {"positive": POSITIVE, "negative": NEGATIVE}})

    def _sentence(self, rng, rid: str) -> Record:
        p = self.p
        label = int(rng.integers(2))
        n_fill = int(rng.integers(p["min_words"], p["max_words"] + 1))
        n_sig = int(rng.integers(p["min_signal"], p["max_signal"] + 1))
        words = list(rng.choice(NEUTRAL, size=n_fill))
        major, minor = (POSITIVE, NEGATIVE) if label == 1 else (NEGATIVE, POSITIVE)
        rationale = [0] * n_fill
        for lexicon, flag, count in ((major, 1, n_sig), (minor, 0, n_sig - 1)):
            for _ in range(count):
                pos = int(rng.integers(len(words) + 1))
                words.insert(pos, str(rng.choice(lexicon)))
                rationale.insert(pos, flag)
        return Record(rid, [str(w) for w in words], label, rationale)
