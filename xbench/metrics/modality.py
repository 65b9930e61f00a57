"""Modality metrics for multimodal tasks (image + text in one feature space, :mod:`xbench.features.multimodal`).

**Modality share.** Following MM-SHAP (Parcalabescu & Frank 2023), an explanation's text share is
the part of its absolute attribution that lies on the text,

    T̂ = Σ_{j ∈ text} |a_j| / Σ_j |a_j|,

and the model's own text share comes from removing whole modalities. With the two players image (I)
and text (T), the Shapley values of v(S) = p(target | only the modalities in S present, the others
removed by the task's policies) are exact with four forward passes:

    φ_T = ½ [(v(T) − v(∅)) + (v(IT) − v(I))],   φ_I = ½ [(v(I) − v(∅)) + (v(IT) − v(T))],
    T = |φ_T| / (|φ_T| + |φ_I|).

``modality_share_gap`` scores |T̂ − T| per example (lower is better, in [0, 1]): how far an
explainer's split of the credit between the modalities is from the model's. An example on which
the model ignores both modalities (φ_T = φ_I = 0) has no share to follow and is skipped. The
per-example pair (T̂, T) is kept as the metric's curve and the means in its notes.

**Per-modality faithfulness and plausibility.** ``image_*`` and ``text_*`` are the joint metrics of
:mod:`xbench.metrics.faithfulness`, :mod:`xbench.metrics.plausibility` and
:mod:`xbench.metrics.localisation` restricted to one part (the metric's ``part``): the ranking is
the explanation's over that part's features only (its order over all features, restricted), k
counts the part's features (k_b = ⌈b·F_part⌉), and the other part is left as it is in every input,
for deletion and insertion alike. E.g.

    image_comprehensiveness = 1/|B| Σ_b [p(x) − p(x \\ top^I_{k_b})],   k_b = ⌈b·F_I⌉,

with the question intact; ``image_pointing_game`` = 1[argmax_{j ∈ I} a_j ∈ G_I]. An example whose
gold has nothing in the part (a "no" answer: no object to point at) is skipped by that part's
plausibility metrics.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from xbench.features.multimodal import modality_keeps, shapley_two, text_share_of
from xbench.metrics.base import SKIPPED, Context, Metric
from xbench.metrics.faithfulness import Comprehensiveness, DeletionAUC, InsertionAUC, Sufficiency
from xbench.metrics.localisation import PointingGame, RelevanceMassAccuracy, TopKIntersection
from xbench.metrics.plausibility import AUPRC, TokenF1

MULTIMODAL = frozenset({"multimodal"})
INDIFFERENT = SKIPPED + "the model ignores both modalities (φ_T = φ_I = 0)"


def text_share(a: np.ndarray, text: np.ndarray) -> float:
    """T̂ = Σ_{text} |a| / Σ |a| (NaN when Σ |a| = 0)."""
    m = np.abs(np.asarray(a, dtype=np.float64))
    total = m.sum()
    return float(m[text].sum() / total) if total > 0 else float("nan")


class ModalityShareGap(Metric):
    """|T̂ − T|: the explainer's text share against the model's two-player Shapley text share
    (module docstring; MM-SHAP, Parcalabescu & Frank 2023)."""

    name = "modality_share_gap"
    family = "modality"
    direction, ideal = "lower", 0.0
    range = (0.0, 1.0)
    modalities = MULTIMODAL
    formula = ("|T̂ − T|,  T̂ = Σ_text |a| / Σ |a|,  T = |φ_T| / (|φ_T| + |φ_I|),  "
               "φ = exact two-player Shapley values of p over {image, text}")

    def plan_one(self, ctx: Context, i: int):
        ex = ctx.task.examples[i]
        return ctx.engine.submit(ex, modality_keeps(ex))  # v(∅), v(I), v(T), v(IT)

    def model_share(self, ctx: Context, i: int, handles: Any) -> tuple[float, float, float]:
        """(φ_I, φ_T, T) of example i."""
        v = ctx.p_target(i, handles)
        phi_i, phi_t = shapley_two(*[float(x) for x in v])
        return phi_i, phi_t, text_share_of(phi_i, phi_t)

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        shares, models = [], []
        for j, i in enumerate(idx):
            _, _, t = self.model_share(ctx, i, states[i])
            ex = ctx.task.examples[i]
            t_hat = text_share(ctx.expl.attributions[i], ex.part_mask("text"))
            self.curves[i] = np.array([t_hat, t])
            if np.isnan(t):
                self._failed[i] = INDIFFERENT
                continue
            if np.isnan(t_hat):
                self._failed[i] = "all-zero attributions: no modality share"
                continue
            out[j] = abs(t_hat - t)
            shares.append(t_hat)
            models.append(t)
        self.notes = {"explainer_text_share": float(np.mean(shares)) if shares else None,
                      "model_text_share": float(np.mean(models)) if models else None,
                      "n_model_indifferent": int(sum(v == INDIFFERENT for v in self._failed.values()))}
        return out


def _per_part(base: type[Metric], part: str, formula: str) -> type[Metric]:
    """``base`` restricted to one part of a multimodal example (module docstring), registered as
    ``<part>_<base name>``."""
    doc = (f"{base.name} restricted to the {part} features of a multimodal example (the other part left as "
           f"it is): see :mod:`xbench.metrics.modality`.\n\n{base.__doc__}")
    return type(f"{part.title()}{base.__name__}", (base,),
                {"name": f"{part}_{base.name}", "part": part, "modalities": MULTIMODAL, "formula": formula,
                 "__doc__": doc, "__module__": __name__, "__qualname__": f"{part.title()}{base.__name__}"})


ImageComprehensiveness = _per_part(Comprehensiveness, "image",
                                   "1/|B| Σ_b [p(x) − p(x \\ top^I_{k_b})],  k_b = ⌈b·F_I⌉, the text kept")
ImageSufficiency = _per_part(Sufficiency, "image",
                             "1/|B| Σ_b [p(x) − p(top^I_{k_b} only, with the text)],  k_b = ⌈b·F_I⌉")
ImageDeletionAUC = _per_part(DeletionAUC, "image", "deletion AUC over the image features (k_j = ⌈j·F_I/S⌉), the text kept")
ImageInsertionAUC = _per_part(InsertionAUC, "image",
                              "insertion AUC over the image features, from the image removed, the text kept")
TextComprehensiveness = _per_part(Comprehensiveness, "text",
                                  "1/|B| Σ_b [p(x) − p(x \\ top^T_{k_b})],  k_b = ⌈b·F_T⌉, the image kept")
TextSufficiency = _per_part(Sufficiency, "text",
                            "1/|B| Σ_b [p(x) − p(top^T_{k_b} only, with the image)],  k_b = ⌈b·F_T⌉")
TextDeletionAUC = _per_part(DeletionAUC, "text", "deletion AUC over the text features (k_j = ⌈j·F_T/S⌉), the image kept")
TextInsertionAUC = _per_part(InsertionAUC, "text",
                             "insertion AUC over the text features, from the text removed, the image kept")
ImagePointingGame = _per_part(PointingGame, "image", "1[argmax_{j∈I} a_j ∈ G_I]")
ImageRelevanceMassAccuracy = _per_part(RelevanceMassAccuracy, "image",
                                       "Σ_{j∈G_I} r_j / Σ_{j∈I} r_j,  r = max(a, 0)")
ImageTopKIntersection = _per_part(TopKIntersection, "image", "|top^I_k ∩ G_I| / k,  k = ⌈0.02·F_I⌉ (or a given count)")
TextTokenF1 = _per_part(TokenF1, "text", "|top^T_k ∩ G_T| / |G_T|,  k = |G_T|")
TextAUPRC = _per_part(AUPRC, "text", "ERASER AUPRC of the text attributions against G_T")
