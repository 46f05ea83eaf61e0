"""The linear probe's result record (`ProbeResult`) and the version that keys cached probe results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBE_VERSION = 2  # bump when the method changes, so cached probe results are invalidated


@dataclass
class ProbeResult:
    """Cross-validated linear-probe result.

    Attributes:
        accuracy: out-of-fold accuracy (fraction in [0, 1]) of the nested-CV predictions.
        accuracy_ci: 95 % Wilson interval of ``accuracy`` (fractions; ``accuracy_ci_method``).
        macro_f1: out-of-fold macro-averaged F1 (classes present in the labels).
        macro_f1_ci: 95 % bootstrap interval of ``macro_f1``.
        best_l2: ``lam`` of the objective above for ``best_c`` (mean-loss scaling, full-data n).
        best_c: the C chosen most often over the outer folds (ties: the stronger regularisation); the C to
            refit with. The estimate itself uses each fold's own choice (``chosen_c``).
        per_class_accuracy: out-of-fold recall per class index (None for a class with no sample).
        seconds: wall time of the whole probe (all folds and grid points).
        fold_accuracy: accuracy of each outer fold (at that fold's chosen C).
        cv_accuracy: inner-CV accuracy for each grid point, in ``c_grid`` order, averaged over the outer folds
            (the curve the choices were made on; its maximum is optimistic, the reported accuracy is not).
            None where every inner sweep had stopped early (weaker C than any fold needed).
        c_grid: the C grid swept (strong to weak).
        folds: the number of folds actually used (reduced when a class is too small).
        n_samples, n_classes, n_features: shape of the problem.
        iterations: total L-BFGS iterations over all fits.
        device, dtype: where and in what precision it ran.
        oof_pred: out-of-fold predicted class index per labelled sample, in input order.
        chosen_c: the C chosen by the inner CV for each outer fold.
        c_at_grid_edge: some fold chose the smallest or largest C of the grid (the optimum may lie outside).
        inner_folds: inner CV folds used for the choice of C (0: a result from before nested CV).
        selection: "nested-cv" (C chosen on outer-train only) or "oof-max" (old results: C chosen on the
            reported predictions, slightly optimistic).
        accuracy_ci_method: "wilson" or "bootstrap" (old results).
        notes: caveats worth showing (e.g. C at the grid edge).
    """

    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    best_l2: float
    best_c: float
    per_class_accuracy: list[float | None]
    seconds: float
    fold_accuracy: list[float] = field(default_factory=list)
    cv_accuracy: list[float | None] = field(default_factory=list)
    c_grid: list[float] = field(default_factory=list)
    folds: int = 0
    n_samples: int = 0
    n_classes: int = 0
    n_features: int = 0
    iterations: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    oof_pred: list[int] = field(default_factory=list)
    chosen_c: list[float] = field(default_factory=list)
    c_at_grid_edge: bool = False
    inner_folds: int = 0
    selection: str = "oof-max"
    accuracy_ci_method: str = "bootstrap"
    notes: list[str] = field(default_factory=list)
    protocol: str = "cv"  # "cv" | "group-cv" | "given-split"
    n_eval: int = 0  # samples the metrics are computed on (all under CV; the evaluation split otherwise)

    def to_dict(self, *, include_predictions: bool = False) -> dict[str, Any]:
        """JSON-ready dict (out-of-fold predictions only when asked: they are N long)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "oof_pred"}
        d["accuracy_ci"] = list(self.accuracy_ci)
        d["macro_f1_ci"] = list(self.macro_f1_ci)
        if include_predictions:
            d["oof_pred"] = list(self.oof_pred)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        """Inverse of `to_dict` (missing optional fields take their defaults)."""
        d = dict(d)
        d["accuracy_ci"] = tuple(d["accuracy_ci"])
        d["macro_f1_ci"] = tuple(d["macro_f1_ci"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})
