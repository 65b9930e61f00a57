"""Model sources: each turns a task's ``model:`` block into a model and its tokenizer."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from xbench.core.registry import Registered, Registry

if TYPE_CHECKING:  # pragma: no cover
    from xbench.data.base import Splits
    from xbench.spec.task import TaskSpec


class ModelSource(Registered):
    """A named way to get ``(model, tokenizer, info)`` for a task."""

    registry: ClassVar[Registry["ModelSource"]] = Registry("model source")
    offline: ClassVar[bool] = True
    #: whether ``model.seed`` changes the weights (a model trained here), so that model-seed
    #: stability can compare equally trained models
    seeded: ClassVar[bool] = False

    def origin(self) -> str:
        """Where the model comes from, for ``xbench list tasks`` (e.g. "trained here")."""
        return "trained here" if self.seeded else self.name

    def unavailable(self) -> str | None:
        """Why this model cannot be loaded here (e.g. "needs network: model X"), or None. Quick, and
        never waits on the network."""
        return None

    def load(self, task: "TaskSpec", splits: "Splits") -> tuple[Any, Any, dict]:  # pragma: no cover
        raise NotImplementedError

