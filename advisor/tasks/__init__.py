"""Task plug-ins of `advisor recommend` (registry `TASKS`: classification, detection, instance and semantic
segmentation), and task detection."""

from __future__ import annotations

from pathlib import Path

from advisor.tasks.base import FeatureTask, Signal, Task
from advisor.tasks.registry import Registry

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "FeatureTask",
    "Registry",
    "Signal",
    "Task",
    "detect_task",
    "get_task",
    "task_names",
]

TASKS: Registry[Task] = Registry("task")
TASKS.register("classification", "advisor.tasks.classification:TASK")
TASKS.register("detection", "advisor.tasks.dense:DETECTION")
TASKS.register("instance-segmentation", "advisor.tasks.dense:INSTANCE_SEGMENTATION")
TASKS.register("segmentation", "advisor.tasks.dense:SEGMENTATION")

DEFAULT_TASK = "classification"  # the fallback when no other task recognises the data


def get_task(name: str) -> Task:
    """The registered task `name`. Raises UsageError (with close names and the valid ones) on a miss."""
    return TASKS.get(name)


def task_names() -> list[str]:
    """The registered task names, sorted."""
    return TASKS.names()


def detect_task(path: str | Path) -> str:
    """The task of the data at `path`: the first other task that recognises it, else `DEFAULT_TASK`."""
    for name in TASKS.names():
        if name != DEFAULT_TASK and TASKS.get(name).detect(path):
            return name
    return DEFAULT_TASK
