"""The modalities (text, image, tabular: one module each, implementing :mod:`.protocol`) and the
shared perturbation engine. Importing the package registers the built-in modalities."""
from xbench.features.protocol import AttributionInputs, Example, Modality, ModelAdapter, Removal, Target
from xbench.features import text, image, tabular  # noqa: F401,I001  (registers the built-in modalities)
from xbench.features import lm  # noqa: F401,E402  (registered after the others: their order is unchanged)
from xbench.features import multimodal  # noqa: F401,E402  (registered after the others)

__all__ = ["AttributionInputs", "Example", "Modality", "ModelAdapter", "Removal", "Target"]
