"""train-bert's dropout parameter reaches the model, and the default leaves BERT's 0.1."""
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task, weights_hash


def tiny(**params):
    return parse_task({
        "name": "tiny-dropout", "rationale": True, "max_length": 32,
        "dataset": {"source": "synthetic-sentiment", "params": {"n_train": 128, "n_test": 32}},
        "model": {"source": "train-bert", "params": {"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                                     "intermediate_size": 32, "epochs": 1, **params}},
    }, "tiny.yaml")


def test_dropout_reaches_the_config_and_changes_the_weights():
    off = load_task(tiny(dropout=0.0), 4).model.model
    on = load_task(tiny(), 4).model.model
    assert off.config.hidden_dropout_prob == off.config.attention_probs_dropout_prob == 0.0
    assert on.config.hidden_dropout_prob == on.config.attention_probs_dropout_prob == 0.1
    assert weights_hash(off) != weights_hash(on)
    assert weights_hash(load_task(tiny(dropout=0.0), 4).model.model) == weights_hash(off)  # from the cache
