"""Datasets: readers for image/text/audio layouts, stratified sampling, decoding one sample, and profiles.

Public API: `load_dataset` (layout and modality detected; see its docstring for the layouts), `stratified_sample`,
`load_image`, `load_audio`, `profile_dataset`, and the records `Sample`, `Dataset`, `SkippedItem`,
`DatasetProfile`. Layout readers live in a registry (`register_reader`, `READERS`).

Errors: a path that cannot be used raises `DatasetError` (message names the file, hint says what to do). Single
bad files found while scanning are listed in `Dataset.skipped`; those found later, when decoded, raise
`SkipItem` (a `DatasetError` with ``path``, ``reason``, ``code``) from `load_image`/`load_audio`: catch it,
count it, go on.
"""

from __future__ import annotations

from advisor.data.media import load_audio, load_image, to_rgb
from advisor.data.profile import DatasetProfile, profile_dataset
from advisor.data.readers import READERS, get_reader, load_dataset, register_reader
from advisor.data.sampling import allocate, stratified_sample
from advisor.data.scan import DEFAULT_MAX_IMAGE_PIXELS, max_image_pixels
from advisor.data.types import (
    MODALITIES,
    Dataset,
    Modality,
    Sample,
    SkipItem,
    SkippedItem,
    compute_fingerprint,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MODALITIES",
    "READERS",
    "Dataset",
    "DatasetProfile",
    "Modality",
    "Sample",
    "SkipItem",
    "SkippedItem",
    "allocate",
    "compute_fingerprint",
    "get_reader",
    "load_audio",
    "load_dataset",
    "load_image",
    "max_image_pixels",
    "profile_dataset",
    "register_reader",
    "stratified_sample",
    "to_rgb",
]
