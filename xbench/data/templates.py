"""``templates-sentiment``: natural English review sentences from templates, with gold rationales.

Generation rule (what makes the label, what is the rationale):

* A label (0 = negative, 1 = positive) is assigned to each example so that each split is
  balanced (``n // 2`` of one class, the rest of the other, in a seeded random order).
* A template is drawn uniformly from :data:`TEMPLATES`, independently of the label. A template
  is a sentence with slots, e.g. ``the {aspect} was {adj} and the {aspect2} felt {adj2} .``
* **Sentiment slots** (``{adj}``, ``{verb}``, ``{noun}``, ``{adv}``, numbered for a second use)
  are filled from the lexicon of the label's polarity only: :data:`POSITIVE` or :data:`NEGATIVE`
  (adjectives, past-tense verbs, nouns and adverbs). A sentence never mixes polarities, and no
  negation, contrast (``but``, ``although``) or irony appears in any template, so the polarity of
  every sentiment word is the label.
* **Neutral slots** (aspects such as ``plot`` or ``cinematography``, film genres, degree
  adverbs such as ``very``, people, times, neutral adjectives such as ``french``) are filled from
  lists that are the same whatever the label, so they carry no information about it. Articles
  never precede a sentiment slot unless every word of that slot starts with a consonant (so
  ``a``/``an`` cannot leak the label).
* The **gold rationale** is 1 exactly on the words filled into sentiment slots, 0 elsewhere
  (neutral words, intensifiers, punctuation). Each sentence has one or two sentiment words.

Words are real English; a few long sentiment words (``heartwarming``, ``insufferable``,
``underwhelming``...) are split into several word pieces by BERT-style tokenizers, so word-level
pooling of subword scores is exercised. Test sentences never repeat a training sentence, and
no sentence repeats within a split. An accurate model must read the sentiment words, so
plausibility against the rationale is a correctness check, not a matter of taste.
"""
from __future__ import annotations

import re

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits

#: sentiment lexicons by slot kind; every noun starts with a consonant (it follows "a")
POSITIVE = {
    "adj": ["good", "great", "excellent", "wonderful", "superb", "delightful", "brilliant", "charming",
            "lovely", "fantastic", "captivating", "heartwarming", "breathtaking", "exhilarating",
            "mesmerizing", "masterful", "enchanting", "riveting", "moving", "terrific"],
    "verb": ["loved", "enjoyed", "adored", "admired", "cherished"],
    "noun": ["masterpiece", "triumph", "delight", "gem", "treat"],
    "adv": ["beautifully", "wonderfully", "brilliantly", "superbly", "gracefully"],
}
NEGATIVE = {
    "adj": ["bad", "awful", "terrible", "dreadful", "boring", "dull", "poor", "horrible", "clumsy",
            "mediocre", "disappointing", "unwatchable", "lackluster", "insufferable", "underwhelming",
            "atrocious", "tiresome", "forgettable", "incoherent", "amateurish"],
    "verb": ["hated", "disliked", "loathed", "despised", "detested"],
    "noun": ["disaster", "mess", "failure", "letdown", "chore"],
    "adv": ["poorly", "terribly", "clumsily", "awkwardly", "badly"],
}
#: neutral fillers, drawn the same way for both labels (multi-word entries become several words)
NEUTRAL = {
    "aspect": ["plot", "story", "script", "acting", "cast", "ending", "soundtrack", "dialogue",
               "direction", "cinematography", "pacing", "humor", "screenplay", "editing", "finale",
               "premise", "lead performance", "music", "photography", "opening scene"],
    "aspects": ["actors", "characters", "visuals", "effects", "costumes", "songs", "jokes", "scenes",
                "performances", "sets"],
    "film": ["film", "movie", "drama", "comedy", "thriller", "documentary", "musical", "sequel",
             "western", "romance"],
    "nadj": ["new", "latest", "french", "italian", "long", "short", "recent", "animated",
             "independent", "japanese"],
    "degree": ["very", "really", "quite", "truly", "rather", "fairly", "extremely", "genuinely",
               "surprisingly", "so"],
    "person": ["my friend", "my sister", "the critic", "my father", "our neighbour", "the reviewer",
               "everyone", "my teacher", "the audience", "my brother"],
    "time": ["last night", "on friday", "yesterday", "this weekend", "with my family", "at the festival"],
}
SENTIMENT_SLOTS = ("adj", "verb", "noun", "adv")

#: sentence templates; ``{kind}`` or ``{kind2}`` is a slot (a second slot of a kind draws another word)
TEMPLATES = [
    "the {aspect} was {degree} {adj} .",
    "the {aspect} was {adj} and the {aspect2} felt {adj2} .",
    "i {verb} the {aspect} of this {nadj} {film} .",
    "this {nadj} {film} is a {noun} .",
    "{person} said the {aspect} was {adj} .",
    "we watched the {film} {time} and found it {degree} {adj} .",
    "the {aspects} were {adj} , and the {aspect} was {degree} {adj2} .",
    "the {aspect} is {adv} handled from start to finish .",
    "{person} {verb} this {film} , and the {aspect} is {adj} .",
    "what a {noun} ! the {aspect} alone is {adj} .",
    "from the {aspect} to the {aspect2} , everything about this {film} is {adj} .",
    "honestly , the {aspects} in this {nadj} {film} felt {degree} {adj} to me .",
]
_SLOT = re.compile(r"^\{([a-z]+?)(2?)\}$")


def fill(template: str, label: int, rng) -> tuple[list[str], list[int]]:
    """Fill one template for ``label``: (words, rationale), rationale 1 on sentiment-slot words."""
    lex = POSITIVE if label == 1 else NEGATIVE
    used: dict[str, set[str]] = {}
    words: list[str] = []
    rationale: list[int] = []
    for part in template.split():
        m = _SLOT.match(part)
        if m is None:
            words.append(part)
            rationale.append(0)
            continue
        kind = m.group(1)
        sentiment = kind in SENTIMENT_SLOTS
        pool = [w for w in (lex if sentiment else NEUTRAL)[kind] if w not in used.get(kind, ())]
        choice = str(pool[int(rng.integers(len(pool)))])
        used.setdefault(kind, set()).add(choice)
        for w in choice.split():
            words.append(w)
            rationale.append(int(sentiment))
    return words, rationale


class TemplatesSentiment(DatasetSource):
    """Template-generated English review sentences; the sentiment words decide the label and are the
    gold rationale."""

    name = "templates-sentiment"
    params = {"n_train": 2000, "n_test": 500}

    def load(self, seed: int) -> Splits:
        seen: set[tuple[str, ...]] = set()
        out = {}
        for split in ("train", "test"):
            n = self.p[f"n_{split}"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise XBenchError(f"dataset 'templates-sentiment': field 'dataset.params.n_{split}' must be "
                                  f"a non-negative integer; got {n!r}")
            rng = np_rng("templates-sentiment", seed, split)
            labels = rng.permutation([0] * (n // 2) + [1] * (n - n // 2))
            records = []
            for i, label in enumerate(labels):
                for _ in range(1000):  # reject repeats (within the split, and test sentences seen in train)
                    t = int(rng.integers(len(TEMPLATES)))
                    words, rationale = fill(TEMPLATES[t], int(label), rng)
                    if tuple(words) not in seen:
                        break
                else:
                    raise XBenchError(f"dataset 'templates-sentiment': cannot draw {n} distinct {split} "
                                      f"sentences; lower 'dataset.params.n_{split}'")
                seen.add(tuple(words))
                records.append(Record(f"{split}-{i}", words, int(label), rationale, meta={"template": t}))
            out[split] = records
        return Splits(out["train"], out["test"], ["negative", "positive"],
                      {"lexicon": {"positive": POSITIVE, "negative": NEGATIVE}, "templates": TEMPLATES})
