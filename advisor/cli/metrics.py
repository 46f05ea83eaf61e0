"""`advisor metrics detection|instance-segmentation|segmentation GT PRED`: COCO box or mask AP/AR, or mIoU, of
any predictions, with the protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, safe, stdout_console
from advisor.cli.options import AdvisorCommand, FormatOpt, IgnoreIndexOpt

app = typer.Typer(
    name="metrics",
    help="Detection (COCO box mAP/AR), instance segmentation (mask mAP) and segmentation (mIoU) metrics of saved "
    "predictions against ground truth.",
    no_args_is_help=True,
    add_completion=False,
)

GtArg = Annotated[
    Path,
    typer.Argument(
        help="Ground truth: COCO JSON, YOLO, Pascal VOC, box CSV, metadata.jsonl or images/ + masks/."
    ),
]
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="Evaluate only this split of the ground truth.")
]
GtFormatOpt = Annotated[
    str | None,
    typer.Option("--gt-format", help="Read the ground truth as this format (coco, yolo, voc, csv, ...)."),
]

_DET_ROWS = (
    ("mAP (IoU .50:.95)", "map"),
    ("AP50", "map50"),
    ("AP75", "map75"),
    ("AP small", "map_small"),
    ("AP medium", "map_medium"),
    ("AP large", "map_large"),
    ("AR@1", "ar1"),
    ("AR@10", "ar10"),
    ("AR@100", "ar100"),
)
_SEG_ROWS = (
    ("mIoU", "miou"),
    ("mean Dice", "mean_dice"),
    ("pixel accuracy", "pixel_accuracy"),
    ("mean accuracy", "mean_accuracy"),
    ("frequency-weighted IoU", "fw_iou"),
)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    m = data["metrics"]
    console = stdout_console()
    detection = data["task"] in ("detection", "instance-segmentation")
    console.print(
        f"[bold]{data['task']} metrics[/]: {safe(data['predictions']['path'])} vs {safe(data['ground_truth']['path'])}",
        highlight=False,
    )
    summary = Table(header_style="bold")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for label, key in _DET_ROWS if detection else _SEG_ROWS:
        summary.add_row(label, _fmt(m[key]))
    console.print(summary)
    per_class = Table(header_style="bold")
    per_class.add_column("class")
    # classes with no ground truth (detection) / in neither ground truth nor prediction (segmentation) have
    # no value: counted below the table instead of listed
    values, second = (
        (m["per_class_ap"], m["per_class_ap50"]) if detection else (m["per_class_iou"], m["dice"])
    )
    for column in ("AP", "AP50") if detection else ("IoU", "Dice"):
        per_class.add_column(column, justify="right")
    for name, value in values.items():
        if value is not None:
            per_class.add_row(safe(name), _fmt(value), _fmt(second[name]))
    console.print(per_class)
    absent = sum(v is None for v in values.values())
    if absent:
        why = "without ground truth" if detection else "in neither ground truth nor predictions"
        console.print(f"{absent} class(es) {why}: not scored, not in the means", highlight=False)
    gt, pred = data["ground_truth"], data["predictions"]
    console.print(
        f"{gt['images']} ground-truth image(s) ({safe(gt['format'])}), {pred['images_matched']} with predictions "
        f"({safe(pred['format'])})",
        highlight=False,
    )
    console.print(f"protocol: {safe(data['protocol'])}", highlight=False)
    for note in data["notes"]:
        Output.warn(note)


def _run(task: str, gt: Path, pred: Path, fmt: OutputFormat, **options: Any) -> None:
    from advisor.api import metrics

    report = metrics(task, gt, pred, **options)
    Output(fmt).result(report.to_dict(), _render)


def _coco_command(task: str, predictions_help: str, doc: str) -> None:
    """Register the COCO AP command `task` (detection and instance segmentation differ only in their predictions'
    format and the AP's IoU): its `predictions` argument is described by `predictions_help`, the command by `doc`."""

    def command(
        ground_truth: GtArg,
        predictions: Path,
        split: SplitOpt = None,
        gt_format: GtFormatOpt = None,
        fmt: FormatOpt = OutputFormat.human,
    ) -> None:
        _run(task, ground_truth, predictions, fmt, split=split, gt_format=gt_format)

    # set after the def, as an object (the other annotations are strings, `from __future__ import annotations`),
    # so that this argument's help can differ per command; typer reads it as it reads the strings
    command.__annotations__["predictions"] = Annotated[Path, typer.Argument(help=predictions_help)]
    command.__doc__ = doc
    app.command(task, cls=AdvisorCommand)(command)


_coco_command(
    "detection",
    "COCO results .json (image_id: COCO id or file name) or a folder of YOLO .txt "
    "(class cx cy w h conf, normalised).",
    "COCO box mAP, AP50/75, AP by size, AR@1/10/100 and per-class AP (faster-coco-eval, ids from 1).",
)
_coco_command(
    "instance-segmentation",
    "COCO segm results .json: image_id, category_id, segmentation (RLE or polygons), score.",
    "COCO mask mAP, AP50/75, AP by mask size, AR and per-class AP (faster-coco-eval segm, ids from 1).",
)


@app.command("segmentation", cls=AdvisorCommand)
def segmentation_cmd(
    ground_truth: GtArg,
    predictions: Annotated[
        Path, typer.Argument(help="Folder of predicted index-mask PNGs named like the images (same stem).")
    ],
    ignore_index: IgnoreIndexOpt = None,
    split: SplitOpt = None,
    gt_format: GtFormatOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """mIoU, per-class IoU, Dice and pixel accuracy from one confusion matrix accumulated over all images."""
    _run(
        "segmentation",
        ground_truth,
        predictions,
        fmt,
        ignore_index=ignore_index,
        split=split,
        gt_format=gt_format,
    )
