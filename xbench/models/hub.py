"""``hub``: a pretrained sequence classifier and its fast tokenizer, by Hub id or local folder.

``model.params``::

    name: distilbert/distilbert-base-uncased-finetuned-sst-2-english   # or a local folder
    revision: main              # optional git revision of a Hub model
    trust_remote_code: false    # only if the task says so
    label_map: {NEGATIVE: negative, POSITIVE: positive}   # optional: model label -> dataset class

Model outputs are put in the dataset's class order: with ``label_map`` (keys: the model's
label names or output indices; values: dataset class names or indices), else by matching
the model's ``id2label`` names to the dataset's class names (case, spaces and punctuation
ignored), else, for a model with generic ``LABEL_i`` names and as many outputs as classes,
in the same order (recorded as assumed). The classifier head's rows are permuted once, so
every forward pass, gradient and attention stays that of the original model.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from xbench.core import netcheck
from xbench.core.errors import XBenchError
from xbench.models.base import ModelSource


def _norm(name: Any) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _index_of(x: Any, names: list[str], error: str) -> int:
    """``x`` as an index into ``names``: an in-range integer, or one of the names."""
    if isinstance(x, int) and not isinstance(x, bool) and 0 <= x < len(names):
        return x
    if str(x) in names:
        return names.index(str(x))
    raise XBenchError(error)


def label_order(id2label: dict[int, str], classes: list[str], label_map: dict | None, where: str
                ) -> tuple[list[int], str]:
    """``perm`` with ``perm[c]`` = the model output for dataset class c, and how it was found."""
    n = len(id2label)
    names = [str(id2label[i]) for i in range(n)]
    if n != len(classes):
        hint = "" if label_map else "; set model.params.label_map"
        raise XBenchError(f"{where}: field 'model.params.name': the model has {n} outputs "
                          f"({', '.join(names)}) for {len(classes)} dataset classes ({', '.join(classes)}){hint}")
    if label_map:
        perm = [-1] * n
        for k, v in label_map.items():
            m = _index_of(k, names, f"{where}: field 'model.params.label_map': {k!r} is not a model label "
                                    f"({', '.join(names)}) or output index")
            c = _index_of(v, classes, f"{where}: field 'model.params.label_map': {v!r} is not a dataset class "
                                      f"({', '.join(classes)}) or class index")
            if perm[c] != -1:
                raise XBenchError(f"{where}: field 'model.params.label_map': two model labels map to "
                                  f"class {classes[c]!r}")
            perm[c] = m
        if -1 in perm:
            raise XBenchError(f"{where}: field 'model.params.label_map': no model label maps to class "
                              f"{classes[perm.index(-1)]!r}")
        return perm, "label_map"
    by_name = {_norm(x): i for i, x in enumerate(names)}
    if len(by_name) == n and all(_norm(c) in by_name for c in classes):
        return [by_name[_norm(c)] for c in classes], "names"
    if all(re.fullmatch(r"LABEL_\d+", x) for x in names):
        return list(range(n)), "assumed same order (generic LABEL_i names)"
    raise XBenchError(f"{where}: field 'model.params.label_map' is needed: the model's labels "
                      f"({', '.join(names)}) do not match the dataset classes ({', '.join(classes)})")


def permute_head(model: Any, perm: list[int]) -> None:
    """Reorder the logits by permuting the rows of the classifier's output layer, and check on a
    probe input that the new logits are the old ones reordered.

    Written by hand: ``transformers`` relabels ``id2label`` but has no way to reorder a trained
    head's outputs; the output layer is the last ``Linear`` with ``num_labels`` outputs.
    """
    import torch

    if perm == list(range(len(perm))):
        return
    n = model.config.num_labels
    head = None
    for _, mod in reversed(list(model.named_modules())):
        if isinstance(mod, torch.nn.Linear) and mod.out_features == n:
            head = mod
            break
    if head is None:
        raise XBenchError(f"cannot reorder the outputs of {type(model).__name__}: no output layer with "
                          f"{n} outputs found")
    probe = torch.tensor([[model.config.pad_token_id or 0] * 4], dtype=torch.long)
    probe[0, 1:3] = torch.tensor([min(1000, model.config.vocab_size - 1), min(2000, model.config.vocab_size - 1)])
    idx = torch.tensor(perm)
    with torch.no_grad():
        before = model(input_ids=probe).logits
        head.weight.copy_(head.weight[idx].clone())
        if head.bias is not None:
            head.bias.copy_(head.bias[idx].clone())
        after = model(input_ids=probe).logits
    if not torch.allclose(after, before[:, idx], atol=1e-5):
        raise XBenchError(f"cannot reorder the outputs of {type(model).__name__}: permuting its last "
                          f"{n}-output layer did not permute the logits")


class HubModel(ModelSource):
    """A pretrained ``transformers`` sequence classifier (Hub id or local folder)."""

    name = "hub"
    offline = False
    params = {"name": None, "revision": None, "trust_remote_code": False, "label_map": None}
    #: the task file (set by the loader), to resolve a relative local folder
    task_path: str | None = None

    def _local(self) -> Path | None:
        name = self.p["name"]
        if not isinstance(name, str) or not name:
            return None
        p = Path(name).expanduser()
        cands = [p] if p.is_absolute() else ([Path(self.task_path).resolve().parent / p] if self.task_path else []) + [p]
        for c in cands:
            if (c / "config.json").is_file():
                return c
        return None

    def origin(self) -> str:
        return f"Hub: {self.p['name']}"

    def unavailable(self) -> str | None:
        name = self.p["name"]
        if not isinstance(name, str) or not name or self._local() is not None:
            return None
        if netcheck.hub_model_cached(name, self.p["revision"]) or netcheck.hub_reachable():
            return None
        return f"needs network: model {name} (not in the local Hugging Face cache)"

    def pretrained(self, task: Any, auto_class: Any, missing: set[str] | None = None
                   ) -> tuple[Any, Any, Path | None]:
        """(model, fast tokenizer, local folder or None) from the Hub id or local folder, loaded with
        ``auto_class`` (eager attention, ``trust_remote_code`` only if the task says so); every failure
        is one line naming ``model.params.name``. ``missing``, if given, receives the names of the
        weights the checkpoint lacks (which ``transformers`` initialises at random)."""
        import transformers
        from transformers import AutoTokenizer

        where = task.path or "<task>"
        self.task_path = self.task_path or task.path
        name, rev = self.p["name"], self.p["revision"]
        if not isinstance(name, str) or not name:
            raise XBenchError(f"{where}: field 'model.params.name' is required (a Hub model id or a local folder)")
        trust = self.p["trust_remote_code"]
        if not isinstance(trust, bool):
            raise XBenchError(f"{where}: field 'model.params.trust_remote_code' must be true or false")
        transformers.logging.disable_progress_bar()
        local = self._local()
        target = str(local) if local is not None else name
        kw: dict[str, Any] = {"trust_remote_code": trust}
        if rev and local is None:
            kw["revision"] = rev
        offline = local is not None or not netcheck.hub_reachable()
        if offline:
            kw["local_files_only"] = True
        try:
            tokenizer = AutoTokenizer.from_pretrained(target, use_fast=True, **kw)
            model, loading = auto_class.from_pretrained(target, attn_implementation="eager",
                                                        output_loading_info=True, **kw)
            if missing is not None:
                missing.update(loading.get("missing_keys") or ())
        except (OSError, ValueError, KeyError, ImportError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise XBenchError(f"{where}: field 'model.params.name': cannot load {name!r} ({msg})") from None
        model.eval()
        return model, tokenizer, local

    def describe_model(self, model: Any, tokenizer: Any, local: Path | None) -> dict[str, Any]:
        return {
            "name": self.p["name"], "revision": self.p["revision"],
            "local_path": str(local) if local is not None else None,
            "commit": getattr(model.config, "_commit_hash", None),
            "architecture": type(model).__name__,
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "trust_remote_code": self.p["trust_remote_code"], "tokenizer": type(tokenizer).__name__,
        }

    def load(self, task: Any, splits: Any) -> tuple[Any, Any, dict]:
        from transformers import AutoModelForSequenceClassification

        where = task.path or "<task>"
        lmap = self.p["label_map"]
        if lmap is not None and not (isinstance(lmap, dict) and lmap):
            raise XBenchError(f"{where}: field 'model.params.label_map' must be a mapping model label -> class")
        model, tokenizer, local = self.pretrained(task, AutoModelForSequenceClassification)
        model.eval()
        self._check_tokenizer(tokenizer, model, task, where)
        perm, how = label_order({int(k): v for k, v in model.config.id2label.items()},
                                list(splits.label_names), lmap, where)
        original = [str(model.config.id2label[i]) for i in range(len(perm))]
        permute_head(model, perm)
        model.config.id2label = dict(enumerate(splits.label_names))
        model.config.label2id = {n: i for i, n in enumerate(splits.label_names)}
        info = {**self.describe_model(model, tokenizer, local),
                "labels": {"model": original, "class_to_model_output": perm, "matched_by": how}}
        return model, tokenizer, info

    @staticmethod
    def _check_tokenizer(tokenizer: Any, model: Any, task: Any, where: str) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise XBenchError(f"{where}: field 'model.params.name': {type(tokenizer).__name__} is not a fast "
                              f"tokenizer; word alignment needs word_ids()")
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise XBenchError(f"{where}: field 'model.params.name': the tokenizer has no pad or eos token")
            tokenizer.pad_token = tokenizer.eos_token  # the usual choice for models trained without padding
            model.config.pad_token_id = tokenizer.pad_token_id
        needed = {"mask": "mask_token_id", "unk": "unk_token_id"}.get(task.replacement)
        if needed and getattr(tokenizer, needed) is None:
            raise XBenchError(f"{where}: field 'replacement': the tokenizer of {model.config.name_or_path!r} has no "
                              f"{task.replacement} token; use another replacement (e.g. pad or delete)")
        limit = getattr(tokenizer, "model_max_length", None)
        maxpos = getattr(model.config, "max_position_embeddings", None)
        bounds = [x for x in (limit, maxpos) if isinstance(x, (int, float)) and x < 1e9]
        bound = min(bounds, default=np.inf)
        if task.max_length > bound:
            raise XBenchError(f"{where}: field 'max_length': {task.max_length} exceeds the model's limit "
                              f"of {int(bound)} tokens")


class HubCausalLM(HubModel):
    """A pretrained ``transformers`` causal language model (``AutoModelForCausalLM``: GPT-2, Llama,
    Qwen2, ...) and its fast tokenizer, by Hub id or local folder, for ``modality: lm`` tasks.

    ``model.params``: ``name``, ``revision``, ``trust_remote_code`` as for ``hub``. A checkpoint without
    a language-modelling head (a sequence classifier, a bare encoder) is one line naming the field."""

    name = "hub-causal-lm"
    params = {"name": None, "revision": None, "trust_remote_code": False}

    def load(self, task: Any, splits: Any) -> tuple[Any, Any, dict]:
        from transformers import AutoModelForCausalLM

        where = task.path or "<task>"
        missing: set[str] = set()
        try:
            model, tokenizer, local = self.pretrained(task, AutoModelForCausalLM, missing)
        except XBenchError as e:
            if "Unrecognized configuration class" in str(e):
                raise XBenchError(f"{where}: field 'model.params.name': {self.p['name']!r} has no causal "
                                  f"language-modelling head (AutoModelForCausalLM cannot load it)") from None
            raise
        # a checkpoint of another head (e.g. BERT's sequence classifier, which transformers maps to
        # BertLMHeadModel) loads with its language-modelling head initialised at random
        base = f"{model.base_model_prefix}."
        fresh = sorted(k for k in missing if not k.startswith(base))
        if fresh:
            saved = ", ".join(getattr(model.config, "architectures", None) or []) or "another architecture"
            more = f" and {len(fresh) - 1} more" if len(fresh) > 1 else ""
            raise XBenchError(f"{where}: field 'model.params.name': {self.p['name']!r} has no causal "
                              f"language-modelling head (a {saved} checkpoint: {type(model).__name__}'s "
                              f"{fresh[0]}{more} would be random)")
        if not getattr(tokenizer, "is_fast", False):
            raise XBenchError(f"{where}: field 'model.params.name': {type(tokenizer).__name__} is not a fast "
                              f"tokenizer; prompts map to words through character offsets")
        if task.chat_template and not getattr(tokenizer, "chat_template", None):
            raise XBenchError(f"{where}: field 'chat_template': the tokenizer of {self.p['name']!r} has no chat "
                              f"template")
        return model, tokenizer, self.describe_model(model, tokenizer, local)
