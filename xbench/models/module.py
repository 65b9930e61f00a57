"""``module``: a ``torch.nn.Module`` of the user's own, rebuilt from its class and weights (what the
Python API records for an image or tabular model, so the run can be reproduced).

``model.params``::

    module: my_pkg.models:SmallNet      # importable class (a class defined in __main__ cannot be)
    kwargs: {hidden: 64}               # constructor arguments
    weights: smallnet.safetensors      # state dict, resolved beside the task file

The weights are read with ``safetensors`` (never pickle).
"""
from __future__ import annotations

from typing import Any

from xbench.core.errors import XBenchError
from xbench.core.registry import import_object
from xbench.models.base import ModelSource


class TorchModule(ModelSource):
    """A user's ``torch.nn.Module``: its class imported, built with ``kwargs``, weights loaded."""

    name = "module"
    params = {"module": None, "kwargs": {}, "weights": None}

    def origin(self) -> str:
        return f"module {self.p['module']}"

    def unavailable(self) -> str | None:
        where = "field 'model.params.module'"
        spec = self.p["module"]
        if not isinstance(spec, str) or ":" not in spec:
            return f"{where} must be 'package.module:Class', got {spec!r}"
        if spec.startswith("__main__:"):
            return (f"{where}: class {spec} was defined in a script or notebook and cannot be imported again; "
                    f"define it in a module to reproduce this run")
        if not self.p["weights"]:
            return "field 'model.params.weights' is required (a .safetensors file)"
        try:
            self._weights()
        except XBenchError as e:
            return str(e)
        return None

    def _weights(self):
        from xbench.data.base import resolve_data_path

        return resolve_data_path(self.p["weights"], self.task_path)

    def load(self, task: Any, splits: Any) -> tuple[Any, Any, dict]:
        from safetensors.torch import load_file

        why = self.unavailable()
        if why:
            raise XBenchError(f"{task.path}: {why}")
        cls = import_object(self.p["module"], f"model.params.module {self.p['module']!r}")
        try:
            model = cls(**(self.p["kwargs"] or {}))
        except Exception as e:  # noqa: BLE001 - the user's constructor: one line
            raise XBenchError(f"{task.path}: field 'model.params.kwargs': {self.p['module']}(**kwargs) failed: "
                              f"{type(e).__name__}: {e}") from None
        path = self._weights()
        model.load_state_dict(load_file(str(path)))
        model.eval()
        return model, None, {"module": self.p["module"], "weights": str(path)}
