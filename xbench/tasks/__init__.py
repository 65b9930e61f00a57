"""Tasks at run time: task files checked against the registries (:mod:`.catalogue`) and loaded into
examples, a removal policy, a target and a model adapter (:mod:`.task`)."""
from xbench.tasks.catalogue import load_task_file, parse_task, resolve_task, spec_from_dict, task_specs
from xbench.tasks.task import Task, check_available, load_task, sources, targets_for, weights_hash

__all__ = ["Task", "check_available", "load_task", "load_task_file", "parse_task", "resolve_task", "sources",
           "spec_from_dict", "targets_for", "task_specs", "weights_hash"]
