"""Model-seed stability: do explanations survive retraining the model from another seed?"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from xbench.metrics.base import Context, Metric
from xbench.metrics.stability import spearman


class ModelSeedStability(Metric):
    """Model-seed stability: the same task model is trained from ``n_models`` seeds (the task's seed,
    then seed + 1, ...); each example is explained under every model with the original model's target
    and the same explainer seed; the value is the mean Spearman ρ between the original model's
    attributions and each other model's. Applies to tasks whose model source trains from a seed.
    The other models' held-out accuracies go to the notes, so one can check they are equally good.
    Cost: training n_models − 1 models once (cached on disk) and one re-explanation of every
    example per extra model. Identical rankings count as 1 (see :func:`.stability.spearman`)."""

    name = "model_seed_stability"
    family = "stability"
    direction, ideal = "higher", 1.0
    range = (-1.0, 1.0)
    params = {"n_models": 3}
    reexplains = True
    formula = "1/(k−1) Σ_{s=2..k} ρ_s(a_{θ_1}(x), a_{θ_s}(x)),  θ_s trained from seed s"

    def applies_to(self, task, explainer) -> bool:
        from xbench.models.base import ModelSource

        return super().applies_to(task, explainer) and ModelSource.registry.get(task.spec.model.source).seeded

    def _other_tasks(self, ctx: Context) -> list:
        from xbench.tasks.task import load_task

        spec, n = ctx.task.spec, len(ctx.task.examples)
        key = ("model_seed_stability", spec.name, self.p["n_models"], n)
        if key not in ctx.engine.memo:
            others = []
            for s in range(1, self.p["n_models"]):
                other = load_task(replace(spec, model=replace(spec.model, seed=spec.model.seed + s)), n)
                if [e.id for e in other.examples] != [e.id for e in ctx.task.examples] or any(
                        a.digest() != b.digest() for a, b in zip(other.examples, ctx.task.examples)):
                    raise RuntimeError("retrained model tokenises the examples differently")
                others.append(other)
            ctx.engine.memo[key] = others
        return ctx.engine.memo[key]

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        rhos, accs = [], []
        for other in self._other_tasks(ctx):
            attrs = ctx.reexplain(task=other).attributions
            rhos.append([spearman(ctx.expl.attributions[i], attrs[i]) for i in idx])
            accs.append(other.info["model"].get("test_accuracy"))
        self.notes = {"model_seeds": [ctx.task.spec.model.seed + s for s in range(self.p["n_models"])],
                      "test_accuracy": [ctx.task.info["model"].get("test_accuracy"), *accs]}
        return np.mean(np.array(rhos, dtype=np.float64), axis=0)
