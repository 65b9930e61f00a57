"""The schemas of task and suite files, and where the catalogue lives: pure data, no registry."""
from xbench.spec.suite import Suite, read_suite
from xbench.spec.task import ModelSpec, SourceSpec, TaskSpec

__all__ = ["ModelSpec", "SourceSpec", "Suite", "TaskSpec", "read_suite"]
