"""The ``lm`` modality: prompts read by a causal (decoder-only) language model, and what it generates.

An example is a prompt (its words or tokens are the features) and an *answer*: the token(s) whose
probability is explained. The task's ``lm_target`` says what the explained score is:

- ``next_token``: log p(a | x), the log-probability of the answer token a after the prompt x;
- ``continuation``: Σ_k log p(a_k | x, a_<k), a multi-token answer scored teacher-forced;
- ``contrastive``: log p(a | x) − log p(f | x), the answer against a foil token f (Inseq's
  contrastive attribution; the logit-difference metrics of circuit benchmarks, in log-probability).

The answer is the model's own (``target: predicted``, the default: the greedy next token, the greedy
continuation of ``max_new_tokens``, or for contrastive targets whichever of the dataset's answer and
foil the model prefers, the other being the foil) or the dataset's (``target: label``,
``Record.meta['answer']`` and ``meta['foil']``). It is fixed once per example, before any explainer or
metric runs, and recorded with the results.

**Outputs.** The adapter gives every input row two columns, so the engine, explainers and metrics work
on language models exactly as on classifiers (column 0 is always the explained target):

- ``next_token`` / ``continuation``: ``[s, s']`` with s the target's log-probability above and s' the
  best one-token deviation from it: max over steps k of s − log p(a_k) + max_{v ≠ a_k} log p(v) (for a
  next token, the log-probability of the most likely other token). Probabilities are ``exp`` of the
  columns (:meth:`CausalLM.probabilities`): p(a | x) under the full vocabulary, not renormalised over
  two columns; the argmax is column 0 exactly when every answer token is the model's greedy choice.
- ``contrastive``: ``[d, 0]`` with d = log p(a) − log p(f); their softmax is σ(d), the probability of
  the answer in a two-way choice against the foil, and the argmax flips when the foil overtakes it.

Explainers attribute column 0 (its ``exp`` / σ with ``explained_output: probability``); metrics read
its probability, like a classifier's target class.

**Removal** is in token-id space (:mod:`xbench.features.text`'s policies: a replacement token, or
``delete``, where positions shift); special tokens, chat-template tokens and the answer positions never
move. Rows are right-padded in a batch and each row's scores are read at its own last positions, so a
causal model never sees the padding.

**Chat prompts** (``chat_template: true``) go through the tokenizer's chat template as one user turn;
only the user's tokens are features.

**Two segments.** A record with a second segment (``words_b``, e.g. a question after its context) is
one prompt, the segments joined by a space; with ``perturb_segments: [0]`` only the first segment's
words are features and the question's tokens stay fixed, like the answer's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from xbench.core.errors import XBenchError
from xbench.features.protocol import Modality, PassCounter, Target
from xbench.features.text import TextClassifier, TextExample, materialize

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime
    from xbench.data.base import Record, Splits

LM_TARGETS = ("next_token", "continuation", "contrastive")
POLICIES = ("mask", "unk", "pad", "eos", "delete")


@dataclass(frozen=True)
class Readout:
    """What an input row is scored on: the answer token ids (teacher-forced after the prompt), the foil
    (contrastive targets), and the kind of target. Part of every row and of its de-duplication key."""

    kind: str
    answer: tuple[int, ...]
    foil: int | None = None
    #: score one step of a continuation alone: log p(a_step | x, a_<step) (per-step attributions)
    step: int | None = None

    def key(self) -> bytes:
        return f"|{self.kind}|{self.answer}|{self.foil}|{self.step}".encode()


@dataclass
class LMExample(TextExample):
    """A prompt and its answer. ``input_ids`` is what the model reads: the prompt's tokens (template and
    special tokens included) followed by the answer's tokens but its last (teacher forcing), so the
    scores are read at the last ``len(readout.answer)`` positions. ``feature_ids`` is -1 for every
    token but the prompt's own (the user's, in a chat)."""

    readout: Readout | None = None
    #: the dataset's answer and foil as token ids (``target: label``), None where the dataset has none
    expected: tuple[int, ...] | None = None
    expected_foil: int | None = None
    #: number of prompt tokens (the answer's teacher-forced tokens follow)
    n_prompt: int = 0

    def row(self) -> tuple:
        return self.input_ids, self.ones, self.readout

    @property
    def query(self) -> int:
        """The position whose output predicts the first answer token (the prompt's last)."""
        return self.n_prompt - 1

    def with_answer(self, answer: Sequence[int], foil: int | None, label: int) -> "LMExample":
        """This prompt with another answer (and foil, label): input ids and readout rebuilt."""
        answer = tuple(int(t) for t in answer)
        ids = np.concatenate([self.input_ids[:self.n_prompt], np.asarray(answer[:-1], dtype=np.int64)])
        fids = np.concatenate([self.feature_ids[:self.n_prompt], np.full(len(answer) - 1, -1, dtype=np.int64)])
        return LMExample(self.id, ids, fids, label, self.features, self.rationale, None, self.truncated,
                         self.word_index, dict(self.meta), None, Readout(self.readout.kind, answer, foil),
                         self.expected, self.expected_foil, self.n_prompt)

    def at_step(self, k: int) -> "LMExample":
        """This example scored on answer token k alone (id ``<id>@step:<k>``), for per-step attributions."""
        from dataclasses import replace

        return replace(self, id=f"{self.id}@step:{k}", readout=replace(self.readout, step=int(k)))

    def digest(self) -> bytes:
        return self.input_ids.tobytes() + self.feature_ids.tobytes() + self.readout.key()


@dataclass(frozen=True)
class LMTarget(Target):
    """The explained score of a generative task (module docstring), column 0 of the adapter's outputs."""

    lm_target: str = "next_token"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.lm_target

    def select(self, predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.zeros(len(predicted), dtype=np.int64)  # the answer is column 0 by construction

    def describe(self) -> str:
        who = "the model's greedy" if self.choose == "predicted" else "the dataset's"
        if self.lm_target == "contrastive":
            what = f"log p(answer) - log p(foil), {who} answer against the foil"
            return what if self.output == "logit" else f"sigmoid of {what}"
        what = {"next_token": f"log-probability of {who} next token",
                "continuation": f"sum of the token log-probabilities of {who} continuation (teacher-forced)"}
        return what[self.lm_target] if self.output == "logit" else what[self.lm_target].replace("log-", "", 1)


def replacement_id(policy: str, tokenizer: Any, where: str) -> int | None:
    """The token id a removed token becomes (``delete``: none; its gradient baseline is [PAD], else
    [UNK], else EOS). One line naming the task when the tokenizer has no such token."""
    attr = {"mask": "mask_token_id", "unk": "unk_token_id", "pad": "pad_token_id", "eos": "eos_token_id"}
    if policy == "delete":
        for a in ("pad_token_id", "unk_token_id", "eos_token_id"):
            if getattr(tokenizer, a, None) is not None:
                return int(getattr(tokenizer, a))
        return 0
    tid = getattr(tokenizer, attr[policy], None)
    if tid is None:
        have = [p for p in POLICIES if p == "delete" or getattr(tokenizer, attr.get(p, ""), None) is not None]
        raise XBenchError(f"{where}: field 'replacement': the tokenizer has no {policy} token; "
                          f"valid here: {', '.join(have)}")
    return int(tid)


class LMRemoval:
    """A generative task's removal policy in token-id space (:func:`xbench.features.text.materialize`
    on the prompt; the answer's positions are never features); keys are the ids and the readout."""

    def __init__(self, policy: str, tokenizer: Any, where: str = "<task>") -> None:
        self.name = policy
        self.token_id = replacement_id(policy, tokenizer, where)
        self.token = tokenizer.convert_ids_to_tokens(self.token_id) if self.token_id is not None else None

    def apply(self, ex: LMExample, keep: np.ndarray) -> tuple[list, list[bytes]]:
        rows = [(r[0], r[1], ex.readout) for r in materialize(ex, keep, self.name, self.token_id)]
        tail = ex.readout.key()
        return rows, [r[0].tobytes() + tail if self.name != "pad" else r[0].tobytes() + r[1].tobytes() + tail
                      for r in rows]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"replacement": self.name, "space": "token ids",
                             "fixed": "special tokens, chat template, answer positions"}
        if self.name == "delete":
            d["note"] = "tokens dropped, positions shift"
        else:
            d.update(token=self.token, token_id=self.token_id)
        return d


def readout_columns(logits: torch.Tensor, lengths: torch.Tensor, readouts: Sequence[Readout]) -> torch.Tensor:
    """(N, 2) output columns (module docstring) from (N, L, V) logits of right-padded rows of the given
    ``lengths``: row n is scored at its last ``len(readouts[n].answer)`` positions. Differentiable."""
    dev = logits.device
    # input_ids are the prompt (P tokens) and the answer but its last, L = P + T - 1 tokens: answer
    # token k is predicted at position P - 1 + k = L - T + k
    rows, pos, tok = [], [], []
    for n, r in enumerate(readouts):
        T, L = len(r.answer), int(lengths[n])
        steps = range(T) if r.step is None else (r.step,)
        rows += [n] * len(steps)
        pos += [L - T + k for k in steps]
        tok += [r.answer[k] for k in steps]
    seg_t = torch.tensor(rows, device=dev)
    picked = logits[seg_t, torch.tensor(pos, device=dev)]
    logp = torch.log_softmax(picked if picked.dtype == torch.float64 else picked.float(), dim=-1)  # (P, V)
    tok_t = torch.tensor(tok, device=dev)
    lp = logp.gather(1, tok_t[:, None])[:, 0]
    kind = readouts[0].kind
    N = logits.shape[0]
    if kind == "contrastive":
        foil = torch.tensor([r.foil for r in readouts], device=dev)
        d = lp - logp.gather(1, foil[:, None])[:, 0]
        return torch.stack([d, torch.zeros_like(d)], 1)
    other = logp.scatter(1, tok_t[:, None], float("-inf")).amax(1)
    s = torch.zeros(N, dtype=lp.dtype, device=dev).index_add(0, seg_t, lp)
    dev_best = torch.full((N,), float("-inf"), dtype=lp.dtype, device=dev).scatter_reduce(
        0, seg_t, other - lp, "amax", include_self=True)
    return torch.stack([s, s + dev_best], 1)


class CausalLM(PassCounter):
    """A ``transformers`` causal language model and its tokenizer behind the adapter protocol: batched
    forward passes on token-id rows (right-padded), two output columns per row (module docstring),
    gradients in word-embedding space. Counters as :class:`xbench.features.text.TextClassifier`'s."""

    num_labels = 2

    def __init__(self, model: Any, tokenizer: Any, kind: str, batch_size: int = 128,
                 runtime: "Runtime | None" = None) -> None:
        from xbench.core.device import Runtime

        self.runtime = runtime or Runtime()
        self.model = self.runtime.place(model).eval()
        self.tokenizer = tokenizer
        self.kind = kind
        self.batch_size = self.runtime.batch_size or batch_size
        self.n_forward = self.n_backward = self.n_tokens = 0
        pad = next((getattr(tokenizer, a) for a in ("pad_token_id", "eos_token_id", "unk_token_id")
                    if getattr(tokenizer, a, None) is not None), 0)
        self.pad_id = int(pad)
        #: the ids removal may write (input-noise stability never perturbs their embeddings)
        self.replacement_ids = {k: getattr(tokenizer, f"{k}_token_id", None) for k in ("mask", "unk", "pad", "eos")}
        for p in self.model.parameters():
            p.requires_grad_(False)

    device = TextClassifier.device

    @property
    def context(self) -> int | None:
        """The longest input the model takes (its position table), or None if it has no limit."""
        cfg = self.model.config
        for a in ("n_positions", "max_position_embeddings"):
            if getattr(cfg, a, None):
                return int(getattr(cfg, a))
        return None

    @property
    def provides(self) -> frozenset[str]:
        impl = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        return frozenset({"gradients"} | ({"attention"} if impl in (None, "eager") else set()))

    def with_model(self, model: Any) -> "CausalLM":
        return CausalLM(model, self.tokenizer, self.kind, self.batch_size, self.runtime)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities of output columns: ``exp`` (next token, continuation: the model's own
        probabilities), softmax (contrastive: σ(d) against the foil)."""
        if self.kind == "contrastive":
            return torch.softmax(torch.from_numpy(logits), -1).numpy()
        return np.exp(logits)

    # -- forward passes -------------------------------------------------------------------
    def scores(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, lengths: torch.Tensor,
               readouts: Sequence[Readout], inputs_embeds: torch.Tensor | None = None,
               n_real: int | None = None) -> torch.Tensor:
        """(N, 2) output columns of right-padded rows; the first ``n_real`` rows are counted."""
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                         use_cache=False)
        return self.counted(readout_columns(out.logits, lengths, readouts), n_real, attention_mask)

    def outputs(self, seqs: Sequence[tuple], kind: str = "logit", min_rows: int = 0) -> np.ndarray:
        """Output columns (or their probabilities) of ``(ids, attention, readout)`` rows, one batch
        (filled up to ``min_rows`` like the text adapter's)."""
        seqs, n = self.fill(seqs, min_rows)
        m, L = len(seqs), max(len(s[0]) for s in seqs)
        ids = np.full((m, L), self.pad_id, dtype=np.int64)
        att = np.zeros((m, L), dtype=np.int64)
        for i, (a, mk, _) in enumerate(seqs):
            ids[i, :len(a)] = a
            att[i, :len(a)] = mk
        dev = self.device
        lengths = torch.tensor([len(s[0]) for s in seqs])
        with torch.no_grad():
            cols = self.scores(torch.from_numpy(ids).to(dev), torch.from_numpy(att).to(dev), lengths,
                               [s[2] for s in seqs], n_real=n)[:n].float().cpu().numpy()
        return self.probabilities(cols) if kind == "probability" else cols

    def attentions(self, ex: LMExample) -> tuple[torch.Tensor, ...]:
        """Per-layer attention weights of one example, each (1, heads, L, L); counts one forward."""
        ids = torch.from_numpy(ex.input_ids)[None].to(self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True,
                             use_cache=False)
        self.counted(out.logits[:, -1], attention=torch.ones_like(ids))
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("model returned no attention weights; load it with attn_implementation='eager'")
        return tuple(a.cpu() for a in out.attentions)

    # -- what gradient explainers differentiate: the word embeddings --------------------------
    def grad_inputs(self, ex: LMExample, removal: LMRemoval) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(input embeddings, baseline embeddings of the replacement token at every feature position,
        (attention mask, readout)) for one example, batch of one."""
        dev = self.device
        ids = torch.from_numpy(ex.input_ids)[None].to(dev)
        base_ids = torch.where(torch.from_numpy(ex.feature_ids >= 0)[None].to(dev), int(removal.token_id), ids)
        with torch.no_grad():
            emb, base = self.embed(ids).requires_grad_(), self.embed(base_ids)
        return emb, base, (torch.ones_like(ids), ex.readout)

    def grad_forward(self, probability: bool):
        def f(embeds: torch.Tensor, att: torch.Tensor, readout: Readout) -> torch.Tensor:
            n, L = embeds.shape[0], embeds.shape[1]
            cols = self.scores(None, att, torch.full((n,), L), [readout] * n, inputs_embeds=embeds)
            if not probability:
                return cols
            return torch.softmax(cols, -1) if self.kind == "contrastive" else cols.exp()

        return f

    # per-token scores from an embedding attribution, and the word embeddings: as for text classifiers
    reduce_grad = staticmethod(TextClassifier.reduce_grad)
    embed = TextClassifier.embed

    # -- fixing the answers --------------------------------------------------------------------
    def greedy(self, exs: Sequence[LMExample], steps: int) -> list[tuple[int, ...]]:
        """Each prompt's greedy continuation of ``steps`` tokens (argmax over the vocabulary at each
        step, no cache: prompts are short); one forward per step and example, counted."""
        out: list[tuple[int, ...]] = []
        for ex in exs:
            ids = torch.from_numpy(ex.input_ids[:ex.n_prompt])[None].to(self.device)
            toks: list[int] = []
            with torch.no_grad():
                for _ in range(steps):
                    logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
                    self.counted(logits[:, -1], attention=torch.ones_like(ids))
                    t = int(logits[0, -1].float().argmax())
                    toks.append(t)
                    ids = torch.cat([ids, torch.tensor([[t]], device=self.device)], 1)
            out.append(tuple(toks))
        return out


def check_causal_lm(model: Any, where: str) -> None:
    """One line when ``model`` has no language-modelling head (e.g. a sequence classifier)."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if head is None or getattr(head, "out_features", vocab) != vocab:
        raise XBenchError(f"{where}: field 'model': {type(model).__name__} has no language-modelling head "
                          f"(lm tasks need a causal LM, e.g. AutoModelForCausalLM)")


def prompt_tokens(tokenizer: Any, words: list[str], chat: bool, system: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, word index of each token or -1) of a prompt of ``words`` joined by spaces: as one
    user turn of the chat template with ``chat``, else as plain text (the tokenizer's own special
    tokens, e.g. a BOS, added). Tokens map to words by character offsets, so template and special
    tokens are never features, and words are never re-split by hand."""
    text = " ".join(words)
    if chat:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        full = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        start = full.rfind(text)
        if start < 0:
            raise ValueError("the chat template does not contain the prompt verbatim")
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    else:
        start, enc = 0, tokenizer(text, return_offsets_mapping=True)
    bounds, pos = [], start
    for w in words:
        bounds.append((pos, pos + len(w)))
        pos += len(w) + 1
    special = set(getattr(tokenizer, "all_special_ids", []))
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    wid = np.full(len(ids), -1, dtype=np.int64)
    w = 0
    for j, (a, b) in enumerate(enc["offset_mapping"]):
        if b <= a or int(ids[j]) in special:
            continue
        while w < len(bounds) and bounds[w][1] <= a:
            w += 1
        # a token whose characters (a leading space aside) lie inside word w
        if w < len(bounds) and b > bounds[w][0] and a < bounds[w][1]:
            wid[j] = w
    # a token that is only the space before a word (the BPE has no merge of the space with the word's
    # first bytes) goes with that word, as the space of " Paris" does
    src = full if chat else text
    offsets = enc["offset_mapping"]
    for j in range(len(ids) - 1):
        a, b = offsets[j]
        if wid[j] < 0 and wid[j + 1] >= 0 and start <= a < b and not src[a:b].strip() and int(ids[j]) not in special:
            wid[j] = wid[j + 1]
    return ids, wid


class LMModality(Modality):
    """Prompts for a causal language model (module docstring)."""

    name = "lm"
    generative = True
    replacements = POLICIES
    provides = frozenset({"gradients", "attention"})
    noise = "embeddings"
    token_edits = False

    @property
    def kind(self) -> str:
        return self.spec.lm_target or "next_token"

    def target(self) -> LMTarget:
        return LMTarget(self.spec.explained_output, self.spec.target, self.kind)

    def removal(self, splits: "Splits", tokenizer: Any) -> LMRemoval:
        return LMRemoval(self.spec.replacement, tokenizer, self.spec.path or self.spec.name)

    def _answer_ids(self, tokenizer: Any, rid: str, text: str, what: str) -> tuple[int, ...]:
        lead = "" if self.spec.chat_template else " "
        ids = tuple(int(t) for t in tokenizer(lead + text, add_special_tokens=False)["input_ids"])
        where = self.spec.path or self.spec.name
        if not ids:
            raise XBenchError(f"{where}: example {rid}: the {what} {text!r} has no tokens")
        if len(ids) > 1 and (self.kind != "continuation" or what == "foil"):
            pieces = tokenizer.convert_ids_to_tokens(list(ids))
            raise XBenchError(f"{where}: example {rid}: the {what} {text!r} is {len(ids)} tokens "
                              f"({', '.join(map(repr, pieces))}); lm_target {self.kind} needs one token"
                              + (" (use lm_target: continuation)" if what == "answer" else ""))
        return ids

    def encode(self, records: list["Record"], splits: "Splits", tokenizer: Any, removal: LMRemoval) -> list[LMExample]:
        where = self.spec.path or self.spec.name
        self._tokenizer = tokenizer
        out = []
        for r in records:
            if not r.all_words or not any(w.strip() for w in r.all_words):
                raise XBenchError(f"{where}: example {r.id}: the prompt is empty")
            try:
                words = r.all_words
                ids, wid = prompt_tokens(tokenizer, words, bool(self.spec.chat_template), self.spec.system_prompt)
            except ValueError as e:
                raise XBenchError(f"{where}: example {r.id}: {e}") from None
            answer = r.meta.get("answer")
            expected = None if answer is None else self._answer_ids(tokenizer, r.id, str(answer), "answer")
            foil_text = r.meta.get("foil")
            foil = None if foil_text is None else self._answer_ids(tokenizer, r.id, str(foil_text), "foil")[0]
            if self.kind == "contrastive":
                if foil is None or expected is None:
                    raise XBenchError(f"{where}: example {r.id}: lm_target contrastive needs an answer and a foil "
                                      f"(record fields meta.answer and meta.foil)")
                if foil == expected[0]:
                    raise XBenchError(f"{where}: example {r.id}: the foil {foil_text!r} is the answer")
            if self.spec.target == "label" and expected is None:
                raise XBenchError(f"{where}: example {r.id}: target: label needs the dataset's answer (meta.answer)")
            if self.spec.perturb_segments is not None:  # words of the other segment (e.g. the question) are fixed
                seg = np.where(wid < len(r.words), 0, 1)
                wid = np.where(np.isin(seg, self.spec.perturb_segments), wid, -1)
            if self.spec.granularity == "tokens":
                cols = np.flatnonzero(wid >= 0)
                feat = np.full(len(ids), -1, dtype=np.int64)
                feat[cols] = np.arange(len(cols))
                names = list(tokenizer.convert_ids_to_tokens([int(ids[j]) for j in cols]))
                src = wid[cols]
            else:
                kept = sorted({int(w) for w in wid if w >= 0})
                remap = {w: i for i, w in enumerate(kept)}
                feat = np.array([-1 if w < 0 else remap[int(w)] for w in wid], dtype=np.int64)
                names, src = [words[w] for w in kept], np.asarray(kept, dtype=np.int64)
            rationale = None
            if r.rationale is not None:
                if len(r.rationale) != len(words):
                    raise XBenchError(f"{where}: example {r.id}: rationale has {len(r.rationale)} entries "
                                      f"for {len(words)} words")
                rationale = np.array([int(bool(r.rationale[int(w)])) for w in src], dtype=np.int8)
            placeholder = expected or (0,)
            ex = LMExample(r.id, ids, feat, 0, names, rationale, None, False, np.asarray(src, dtype=np.int64),
                           dict(r.meta), None, Readout(self.kind, tuple(placeholder), foil), expected, foil, len(ids))
            out.append(ex.with_answer(placeholder, foil, 0))
        return out

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: "Runtime") -> CausalLM:
        check_causal_lm(model, self.spec.path or self.spec.name)
        return CausalLM(model, tokenizer, self.kind, runtime=runtime)

    def bind(self, examples: list[LMExample], adapter: CausalLM) -> list[LMExample]:
        """Fix each example's answer: the dataset's (``target: label``) or the model's (greedy); label 0
        when it is the dataset's answer, 1 when the model's differs from it. Checks the context length."""
        where = self.spec.path or self.spec.name
        ctx = adapter.context
        out = []
        if self.spec.target == "label":
            answers = [ex.expected for ex in examples]
            foils = [ex.expected_foil for ex in examples]
        elif self.kind == "contrastive":  # the one of answer and foil the model prefers; one batch
            d = adapter.outputs([ex.with_answer(ex.expected, ex.expected_foil, 0).row() for ex in examples], "logit")[:, 0]
            answers = [(ex.expected[0],) if d_i >= 0 else (ex.expected_foil,) for ex, d_i in zip(examples, d)]
            foils = [ex.expected_foil if d_i >= 0 else ex.expected[0] for ex, d_i in zip(examples, d)]
        else:
            steps = [1 if self.kind == "next_token" else
                     (self.spec.max_new_tokens or (len(ex.expected) if ex.expected else 1)) for ex in examples]
            answers = []
            for s in sorted(set(steps)):
                idx = [i for i, k in enumerate(steps) if k == s]
                for i, a in zip(idx, adapter.greedy([examples[i] for i in idx], s)):
                    answers.append((i, a))
            answers = [a for _, a in sorted(answers)]
            foils = [ex.expected_foil for ex in examples]
        for ex, a, f in zip(examples, answers, foils):
            if ctx is not None and ex.n_prompt + len(a) - 1 > ctx:
                raise XBenchError(f"{where}: example {ex.id}: the prompt and answer are {ex.n_prompt + len(a) - 1} "
                                  f"tokens, longer than the model's context of {ctx}")
            out.append(ex.with_answer(a, f, 0 if ex.expected is None or tuple(a) == tuple(ex.expected) else 1))
        return out

    def query_position(self, ex: LMExample) -> int:
        return ex.query

    def pooling(self) -> str:
        return self.spec.pooling

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        c: dict[str, Any] = {"lm_target": self.kind, "answer": "dataset" if self.spec.target == "label" else "greedy"}
        if scores == "tokens" and self.spec.granularity == "words":
            c["pooling"] = self.spec.pooling
        if space == "input":
            c["embedding_reduction"] = reduce
        return c

    def view(self, ex: LMExample) -> tuple[dict[str, Any], dict[str, Any]]:
        tok = getattr(self, "_tokenizer", None)
        dec = (lambda ids: tok.decode(list(ids))) if tok is not None else (lambda ids: " ".join(map(str, ids)))
        own: dict[str, Any] = {"answer": dec(ex.readout.answer), "lm_target": self.kind}
        if ex.readout.foil is not None:
            own["foil"] = dec([ex.readout.foil])
        if ex.expected is not None:
            own["expected"] = dec(ex.expected)
        return {}, own
