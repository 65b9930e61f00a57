"""Test helpers for the generative Hub tasks: a CounterFact fixture in the Hub's layout and schema
(``NeelNanda/counterfact-tracing``), and tiny randomly initialised causal language models of the
shipped tasks' architectures, each with a real byte-level BPE tokenizer trained here, saved with
``save_pretrained`` as the Hub lays out a model repo (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json). Nothing is downloaded; every folder is written into the test's tmp path.

- GPT-2 (``openai-community/gpt2``): ``GPT2LMHeadModel``, ``GPT2TokenizerFast`` with
  ``<|endoftext|>`` as bos, eos and unk (the last id), no pad, no chat template;
- SmolLM2 (``HuggingFaceTB/SmolLM2-135M``): ``LlamaForCausalLM`` (tied embeddings), a GPT-2-class
  tokenizer whose special tokens come first (``<|endoftext|>`` = 0, ``<|im_start|>``, ``<|im_end|>``,
  ...), bos = eos = unk = ``<|endoftext|>``, and a ChatML template with SmolLM's default system turn;
- Qwen2.5-Instruct (``Qwen/Qwen2.5-0.5B-Instruct``): ``Qwen2ForCausalLM`` (tied embeddings, a vocabulary
  padded past the tokenizer's), ``Qwen2TokenizerFast`` (NFC, Qwen's split regex, byte-level BPE) with
  ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` after the BPE vocabulary, eos ``<|im_end|>``, pad
  ``<|endoftext|>``, no bos or unk, and Qwen2.5's ChatML template (its default system message when
  none is given).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: CounterFact rows in the Hub schema of NeelNanda/counterfact-tracing: prompt = relation_prefix +
#: subject + relation_suffix; targets lead with a space, and so do subjects that do not start the
#: prompt. Facts written for the fixture (a subject followed by punctuation, one with "'s", accents).
FACTS = [
    ("P103", "The mother tongue of {} is", "The mother tongue of", " Danielle Darrieux", " is", " French", " English"),
    ("P140", "The official religion of {} is", "The official religion of", " Edwin of Northumbria", " is",
     " Christianity", " Islam"),
    ("P1303", "{}, the", "", "Toko Yasuda", ", the", " guitar", " piano"),
    ("P17", "{}, which is located in", "", "Autonomous University of Madrid", ", which is located in",
     " Spain", " Sweden"),
    ("P190", "What is the twin city of {}? It is", "What is the twin city of", " Lyon", "? It is",
     " Beirut", " Manila"),
    ("P36", "The capital of {} is", "The capital of", " France", " is", " Paris", " Rome"),
    ("P176", "{}'s headquarters are in", "", "Apple", "'s headquarters are in", " Cupertino", " Oslo"),
    ("P641", "{} professionally plays the sport of", "", "Michael Jordan", " professionally plays the sport of",
     " basketball", " soccer"),
    ("P103", "The mother tongue of {} is", "The mother tongue of", " Émile Zola", " is", " French", " German"),
    ("P131", "{} is located in the city of", "The", " Eiffel Tower", " is located in the city of", " Paris",
     " London"),
]


def counterfact_rows() -> list[dict[str, str]]:
    rows = []
    for i, (rid, relation, prefix, subject, suffix, true, false) in enumerate(FACTS):
        rows.append({"relation": relation, "relation_prefix": prefix, "relation_suffix": suffix,
                     "prompt": prefix + subject + suffix, "relation_id": rid,
                     "target_false_id": f"Q{1000 + i}", "target_true_id": f"Q{2000 + i}",
                     "target_true": true, "target_false": false, "subject": subject})
    return rows


def counterfact_dataset(root: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    """The dataset repo as the Hub serves it: one Parquet file of string columns under data/ (what
    ``load_dataset`` reads for a split named train), written with ``datasets``."""
    import datasets as d

    d.disable_progress_bars()
    rows = counterfact_rows() if rows is None else rows
    features = d.Features({k: d.Value("string") for k in (
        "relation", "relation_prefix", "relation_suffix", "prompt", "relation_id", "target_false_id",
        "target_true_id", "target_true", "target_false", "subject")})
    (root / "data").mkdir(parents=True, exist_ok=True)
    d.Dataset.from_list(rows, features=features).to_parquet(root / "data" / "train-00000-of-00001.parquet")
    return root


def corpus() -> list[str]:
    """What the fixture tokenizers are trained on: every prompt with its targets (so answers are one
    token each, as in the real vocabularies), the chat templates' text, and some prose."""
    out = []
    for r in counterfact_rows():
        out += [r["prompt"] + r["target_true"], r["prompt"] + r["target_false"], r["target_true"].strip(),
                r["target_false"].strip()]
    out += ["You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
            "Reply with only the word or words that complete the user's sentence.",
            "system\nuser\nassistant\n", "Answer in one word.",
            "Facts about cities, languages, sports and companies are recalled from the subject of a sentence.",
            "The quick brown fox jumps over the lazy dog, and 1234 numbers follow: 56, 789."]
    return out * 4


def bpe(special: list[str], regex_split: bool = False, nfc: bool = False, special_first: bool = True,
        vocab_size: int = 2000) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on :func:`corpus`; ``special`` tokens take the
    first ids (SmolLM2) or the last (GPT-2, Qwen2)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    if regex_split:  # Qwen2's: letters with one leading non-letter, single digits, punctuation runs
        pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special if special_first else [],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    if not special_first:
        from tokenizers import AddedToken

        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
    return tok


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    import transformers

    transformers.logging.disable_progress_bar()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """GPT-2's layout: ``<|endoftext|>`` (the last id) is bos, eos and unk; no pad, no chat template."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    from xbench.core.seeding import isolated_global_rng

    tok = GPT2TokenizerFast(tokenizer_object=bpe(["<|endoftext|>"], special_first=False),
                            bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                            model_max_length=1024)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=eot, eos_token_id=eot, initializer_range=0.2)
    with isolated_global_rng(seed):
        model = GPT2LMHeadModel(config)
    return _save(model, tok, folder)


SMOLLM_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>",
                  "<filename>", "<empty_output>"]
#: ChatML with SmolLM's default system turn when the conversation has none
SMOLLM_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def tiny_smollm2(folder: Path, seed: int = 0) -> Path:
    """SmolLM2's layout: Llama with tied embeddings; special tokens first, bos = eos = unk =
    ``<|endoftext|>`` (id 0), the ChatML template in tokenizer_config.json."""
    from transformers import GPT2TokenizerFast, LlamaConfig, LlamaForCausalLM

    from xbench.core.seeding import isolated_global_rng

    tok = GPT2TokenizerFast(tokenizer_object=bpe(SMOLLM_SPECIAL), bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                            additional_special_tokens=SMOLLM_SPECIAL, model_max_length=8192)
    tok.chat_template = SMOLLM_TEMPLATE
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, rope_theta=100000.0,
                         initializer_range=0.2)
    with isolated_global_rng(seed):
        model = LlamaForCausalLM(config)
    return _save(model, tok, folder)


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#: Qwen2.5's ChatML (without its tool-calling branches): the given system turn or the default one
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\n" + QWEN_DEFAULT_SYSTEM + "<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")


def tiny_qwen2_instruct(folder: Path, seed: int = 0) -> Path:
    """Qwen2.5-Instruct's layout: Qwen2 with tied embeddings and a vocabulary padded to a multiple of
    64 past the tokenizer's; special tokens after the BPE vocabulary; eos ``<|im_end|>``, pad
    ``<|endoftext|>``, no bos, no unk; Qwen2.5's chat template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2TokenizerFast

    from xbench.core.seeding import isolated_global_rng

    tok = Qwen2TokenizerFast(tokenizer_object=bpe(QWEN_SPECIAL, regex_split=True, nfc=True, special_first=False),
                             bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
                             additional_special_tokens=QWEN_SPECIAL[1:], model_max_length=131072,
                             errors="replace", split_special_tokens=False)
    tok.chat_template = QWEN_TEMPLATE
    vocab = -(-len(tok) // 64) * 64
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                         eos_token_id=tok.eos_token_id, rope_theta=1000000.0, initializer_range=0.2)
    with isolated_global_rng(seed):
        model = Qwen2ForCausalLM(config)
    return _save(model, tok, folder)


def tiny_distilbert_classifier(folder: Path, tokenizer_from: Path, seed: int = 0) -> Path:
    """A sequence classifier (no language-modelling head) over a fixture tokenizer: what a task pointed
    at the wrong checkpoint loads."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from xbench.core.seeding import isolated_global_rng

    tok = AutoTokenizer.from_pretrained(str(tokenizer_from))
    config = DistilBertConfig(vocab_size=len(tok), dim=32, hidden_dim=64, n_layers=1, n_heads=2, num_labels=2,
                              max_position_embeddings=128)
    with isolated_global_rng(seed):
        model = DistilBertForSequenceClassification(config)
    return _save(model, tok, folder)


def tiny_bert_classifier(folder: Path, tokenizer_from: Path, seed: int = 0) -> Path:
    """A BERT sequence classifier (``transformers`` maps BERT to ``BertLMHeadModel`` for causal LM, so
    ``AutoModelForCausalLM`` loads it with a freshly initialised head)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from xbench.core.seeding import isolated_global_rng

    tok = AutoTokenizer.from_pretrained(str(tokenizer_from))
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2)
    with isolated_global_rng(seed):
        model = BertForSequenceClassification(config)
    return _save(model, tok, folder)
