"""Tiny fake models for the bench tests: a module that sleeps a known time, one that runs out of memory."""

from __future__ import annotations

import time

import torch


class SleepModule(torch.nn.Module):
    """forward(x) sleeps ``seconds`` and returns the per-sample mean: a known latency."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(id(x))
        time.sleep(self.seconds)
        return x.flatten(1).mean(1, keepdim=True) * self.scale


class OomAbove(torch.nn.Module):
    """A linear model that raises torch.OutOfMemoryError for batches larger than ``limit`` (simulated OOM)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.lin = torch.nn.Linear(12, 4)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"simulated: batch {x.shape[0]} > {self.limit}")
        return self.lin(x.flatten(1))


class FakeLoaded:
    """The part of advisor.models.LoadedModel the harness uses."""

    runtime = "torch"
    modality = "image"
    pretrained = False
    head = None

    def __init__(self, module: torch.nn.Module, shape: tuple[int, ...] = (3, 2, 2)) -> None:
        self.module = module
        self.shape = shape

    def example_batch(self, batch_size, *, input_size=None, seq_len=None, clip_seconds=None):
        return (torch.randn(batch_size, *self.shape, generator=torch.Generator().manual_seed(0)),)


def loader_for(module: torch.nn.Module, shape: tuple[int, ...] = (3, 2, 2)):
    """A `loader` for benchmark_model that returns `module` whatever the id."""

    def load(model_id, *, device, pretrained):
        return FakeLoaded(module.to(device), shape)

    return load
