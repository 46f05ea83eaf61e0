"""Catalog search: words normalised for case, punctuation and hyphens, matched at word boundaries, ranked."""

from __future__ import annotations

import re
from collections.abc import Iterable

from advisor.catalog.schema import CatalogEntry

# Scores of one query word against an entry: a whole word of it, the start of a word, anywhere inside.
WHOLE, PREFIX, INSIDE = 3, 2, 1
FAMILY_BONUS = 5  # the whole query names the entry's family: an exact family first


def squash(text: str) -> str:
    """Lower case, `+` as `plus`, every other non-alphanumeric removed: `U-Net` -> `unet`, `R-CNN` -> `rcnn`."""
    return re.sub(r"[^a-z0-9]+", "", text.lower().replace("+", "plus"))


def _fields(e: CatalogEntry) -> list[str]:
    return [e.id, e.family, e.architecture, e.task, e.modality, e.pretrain_data or "", *e.tags]


def _words(e: CatalogEntry) -> set[str]:
    """The entry's words (split at punctuation, `/`, `_`, `-`, `.`), plus each field squashed whole."""
    out: set[str] = set()
    for f in _fields(e):
        out.update(squash(t) for t in re.split(r"[\s:/_.\-]+", f) if squash(t))
        out.add(squash(f))
        out.update(squash(p) for p in f.split(":", 1)[-1].split("/"))  # hub ids: org and name
    out.discard("")
    return out


def _score_word(w: str, words: set[str], hay: str) -> int:
    if w in words:
        return WHOLE
    if any(t.startswith(w) for t in words):
        return PREFIX
    return INSIDE if w in hay else 0


def rank(entries: Iterable[CatalogEntry], text: str) -> list[CatalogEntry]:
    """Entries matching every word of `text`, best first (ties keep catalog order).

    A word matches when, normalised (`squash`), it is a word of the entry, starts one, or occurs inside the
    squashed id/family/architecture/task/pretraining data/tags; a word ending in `+` (`deeplabv3+`) that matches
    nothing as `...plus` is tried without it. Whole words score above prefixes above inner matches, and an entry
    whose family the whole query names comes first — so `bert` lists BERT before HuBERT.
    """
    raw = [w for w in text.split() if squash(w)]
    full = squash(text)
    scored: list[tuple[int, int, CatalogEntry]] = []
    for i, e in enumerate(entries):
        words = _words(e)
        hay = " ".join(squash(f) for f in _fields(e))
        total = 0
        for r in raw:
            s = _score_word(squash(r), words, hay)
            if not s and r.endswith("+"):
                s = _score_word(squash(r.rstrip("+")), words, hay)
            if not s:
                break
            total += s
        else:
            if full == squash(e.family):
                total += FAMILY_BONUS
            scored.append((-total, i, e))
    return [e for _, _, e in sorted(scored, key=lambda t: (t[0], t[1]))]
