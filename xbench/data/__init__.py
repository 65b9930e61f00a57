"""Dataset sources, one module each; importing the package registers the built-in ones.

A new source is one module with a :class:`~xbench.data.base.DatasetSource` subclass that sets
``name`` (the task file's ``dataset.source``).
"""
from xbench.data.base import ArrayRecord, DatasetSource, MultimodalRecord, Record, Splits, resolve_data_path
from xbench.data import arrays, eraser, files, hub, images, sst, synthetic, tabular, templates  # noqa: F401  (built-ins)
from xbench.data import kv  # noqa: F401,E402  (built-in, registered after the others: their order is unchanged)
from xbench.data import agreement, modsum  # noqa: F401,E402  (built-ins, after kv: the order above is unchanged)
from xbench.data import hub_prompts  # noqa: F401,E402  (built-in, registered after the others: their order is unchanged)
from xbench.data import vqa, hub_vl  # noqa: F401,E402  (built-ins, after the others: their order is unchanged)

__all__ = ["ArrayRecord", "DatasetSource", "MultimodalRecord", "Record", "Splits", "resolve_data_path"]
