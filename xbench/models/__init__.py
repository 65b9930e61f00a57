"""Model sources, one module each; importing the package registers the built-in ones.

A new source is one module with a :class:`~xbench.models.base.ModelSource` subclass that sets
``name`` (the task file's ``model.source``).
"""
from xbench.models.base import ModelSource
from xbench.models import bert, cnn, hub, minilm, module, tabular  # noqa: F401  (registers the built-in sources)
from xbench.models import gpt2  # noqa: F401,E402  (built-in, registered after the others: their order is unchanged)
from xbench.models import vqa, vl_hub  # noqa: F401,E402  (built-ins, after the others)

__all__ = ["ModelSource"]
