"""Model-seed stability: do explanations survive retraining the model from another seed, more than
they survive replacing the model with a random one?"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from xbench.metrics.base import Context, Metric
from xbench.metrics.sanity import RandomizationFull, randomize_
from xbench.metrics.stability import spearman


class ModelSeedStability(Metric):
    """Model-seed stability, anchored: agreement across retrained models minus agreement with a
    random model.

    The task model is trained from ``n_models`` seeds (the task's seed, then seed + 1, ...); each
    example is explained under every model with the original model's target and the same explainer
    seed. ρ_seed is the mean Spearman ρ between the original model's attributions and each retrained
    model's (the raw stability across equally good models, in the spirit of the Rashomon-set
    comparisons of explanation disagreement). Alone it rewards ignoring the model: the ``random``
    control, whose attributions depend on the example and the seed only, scores a perfect 1.
    So the value subtracts the same ρ against the fully randomised model of ``randomization_full``
    (Adebayo et al. 2018: every weight tensor re-drawn from N(mean, std) of its trained values, the
    same random model for every explainer):

        value = 1/(k−1) Σ_{s=2..k} ρ(a_{θ_1}(x), a_{θ_s}(x))  −  ρ(a_{θ_1}(x), a_{θ̃}(x))

    What an explanation keeps across retraining counts only as far as it is something a model that
    learnt nothing does not also produce. An explainer that ignores the model scores exactly 0 (both
    terms are 1); one that is identical across retrained models and unrelated to a random one scores
    1; the range is [−2, 2]. ``anchored: false`` gives ρ_seed alone (documented as confounded). Both
    terms go to the notes (``mean_rho_seeds``, ``mean_rho_randomized``), with the retrained models'
    held-out accuracies, so one can check they are equally good. Applies to tasks whose model source
    trains from a seed. Cost: training n_models − 1 models once (cached on disk), one
    re-explanation of every example per extra model and one under the random model. Identical
    rankings count as 1 (see :func:`.stability.spearman`)."""

    name = "model_seed_stability"
    family = "stability"
    direction, ideal = "higher", 1.0
    range = (-2.0, 2.0)
    params = {"n_models": 3, "anchored": True}
    reexplains = True
    formula = ("1/(k−1) Σ_{s=2..k} ρ_s(a_{θ_1}(x), a_{θ_s}(x)) − ρ(a_{θ_1}(x), a_{θ̃}(x)),  θ_s trained "
               "from seed s, θ̃ = θ_1 with every weight re-drawn (randomization_full's model)")

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

    def _random_task(self, ctx: Context):
        """The task under the fully randomised model (the one ``randomization_full`` uses)."""
        key = ("model_seed_stability:random", ctx.task.name, ctx.seed)
        if key not in ctx.engine.memo:
            anchor = RandomizationFull()
            rtask, model = anchor.randomised_task(ctx)
            randomize_(model, [n for n, _ in model.named_parameters()], *anchor.seed_parts(ctx))
            ctx.engine.memo[key] = rtask
        return ctx.engine.memo[key]

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        rhos, accs = [], []
        for other in self._other_tasks(ctx):
            attrs = ctx.reexplain(task=other).attributions
            rhos.append([spearman(ctx.expl.attributions[i], attrs[i]) for i in idx])
            accs.append(other.info["model"].get("test_accuracy"))
        seeds = np.mean(np.array(rhos, dtype=np.float64), axis=0)
        self.notes = {"model_seeds": [ctx.task.spec.model.seed + s for s in range(self.p["n_models"])],
                      "test_accuracy": [ctx.task.info["model"].get("test_accuracy"), *accs],
                      "anchored": bool(self.p["anchored"]),
                      "mean_rho_seeds": float(np.nanmean(seeds)) if len(seeds) else None}
        if not self.p["anchored"]:
            return seeds
        attrs = ctx.reexplain(task=self._random_task(ctx)).attributions
        rand = np.array([spearman(ctx.expl.attributions[i], attrs[i]) for i in idx], dtype=np.float64)
        self.notes["mean_rho_randomized"] = float(np.nanmean(rand)) if len(rand) else None
        return seeds - rand
