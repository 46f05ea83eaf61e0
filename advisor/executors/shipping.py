"""A run's subsample shipped to workers that cannot read the dataset's path (no shared filesystem).

The driver packs the loaded dataset, cut to the subsample, with the bytes of each sample's file (`pack_subsample`);
the Ray executor puts that into the object store once and every task unpacks it into its own scratch folder
(`unpack_subsample`). The samples keep their ids and the dataset its fingerprint, so the worker's features and
scores are keyed, and come out, exactly as they would from the path: the bytes decoded are the same bytes. The pack
is made in this process from files this process read, and travels only between the driver and its own workers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from advisor.recommend.work import WorkContext

MAX_SHIPPED_BYTES = 4 * 1024**3  # a subsample larger than this is not shipped (use a shared filesystem)


def pack_subsample(ctx: WorkContext) -> dict[str, Any]:
    """``{"dataset": the dataset cut to the subsample, "files": {sample id: bytes}, "names": {sample id: name}}``.

    Raises:
        OSError: a sample's file cannot be read (the caller then runs the candidates by path).
        ValueError: the subsample's files are larger than `MAX_SHIPPED_BYTES`.
    """
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}
    total = 0
    for s in ctx.samples:
        if s.path is None:  # text rows travel inside the dataset
            continue
        data = Path(s.path).read_bytes()
        total += len(data)
        if total > MAX_SHIPPED_BYTES:
            raise ValueError(f"the subsample's files exceed {MAX_SHIPPED_BYTES / 1024**3:g} GiB")
        files[s.id] = data
        names[s.id] = Path(s.path).name
    dataset = dataclasses.replace(ctx.dataset, samples=list(ctx.samples))
    return {"dataset": dataset, "files": files, "names": names, "bytes": total}


def unpack_subsample(pack: dict[str, Any], dest: str | Path) -> WorkContext:
    """The `WorkContext` of a pack, its files written under `dest` (each sample in a folder of its own, so that
    equal file names of different classes do not collide; the file name, and so its suffix, is kept)."""
    root = Path(dest)
    samples = []
    for i, s in enumerate(pack["dataset"].samples):
        if s.id in pack["files"]:
            f = root / f"{i:07d}" / pack["names"][s.id]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(pack["files"][s.id])
            s = dataclasses.replace(s, path=f)
        samples.append(s)
    return WorkContext(dataclasses.replace(pack["dataset"], samples=samples), samples)
