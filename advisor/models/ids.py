"""`ModelId`: a model id parsed once (``source:name[.tag|@revision][?key=value&...]``), printed back unchanged.

One rule for every command (the registry's): an id is ``source:name``; a string without a ``source:`` prefix is a
``local`` file when it looks like a path (starts with ``/``, ``./``, ``../`` or ``~``, ends with a model-file suffix
such as ``.onnx``, or exists), and an error otherwise. ``str(ModelId.parse(s)) == s.strip()`` always, so ids used
in cache keys and results keep their exact spelling.

The tag is source-specific: timm and torchvision split ``arch.tag`` at the first dot (``resnet50.a1_in1k``,
``resnet50.IMAGENET1K_V2``), ``hf`` splits ``org/name@revision``; ``pkg`` and ``local`` names have no tag (paths
hold dots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from advisor.errors import UsageError

LOCAL_SUFFIXES = (".onnx", ".tflite", ".pt", ".pth", ".ts", ".pt2", ".safetensors", ".bin", ".jit")
_PATH_STARTS = ("/", "./", "../", "~")
_DOT_TAGGED = ("timm", "torchvision")


def looks_like_path(text: str) -> bool:
    """Whether an id without a ``source:`` prefix names a local file (the registry's bare-name rule)."""
    raw = text.split("?", 1)[0]
    return (
        raw.startswith(_PATH_STARTS)
        or raw.lower().endswith(LOCAL_SUFFIXES)
        or Path(raw).expanduser().exists()
    )


@dataclass(frozen=True)
class ModelId:
    """A parsed model id.

    Attributes:
        source: registry key, lower case (``timm``, ``torchvision``, ``hf``, ``pkg``, ``local``, ...).
        name: the source-specific name without its tag (``resnet50``, ``facebook/dinov2-small``, a file path).
        tag: ``a1_in1k`` (timm), ``IMAGENET1K_V2`` (torchvision), the revision (``hf:...@rev``), else None.
        params: the ``?key=value`` options, in the order given.
        prefixed: False for a bare path (a ``local`` id written without ``local:``).
        text: the id exactly as given (whitespace stripped); ``str()`` returns it. Empty when built by hand, then
            ``str()`` writes the canonical form. Not part of equality.
    """

    source: str
    name: str
    tag: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    prefixed: bool = True
    text: str = field(default="", compare=False, repr=False)

    @classmethod
    def parse(cls, model_id: str | ModelId) -> ModelId:
        """Parse an id (a `ModelId` is returned as is).

        Raises:
            UsageError: an empty id, or one without a ``source:`` prefix that is not a path.
        """
        if isinstance(model_id, ModelId):
            return model_id
        text = (model_id or "").strip()
        if not text:
            raise UsageError(
                "empty model id", hint="pass e.g. timm:resnet18.a1_in1k or pkg:efficientnet_lite0"
            )
        raw, _, query = text.partition("?")
        params = tuple(parse_qsl(query, keep_blank_values=True)) if "?" in text else ()
        source, sep, rest = raw.partition(":")
        if sep and len(source) > 1 and not raw.startswith(_PATH_STARTS):
            source = source.lower()
            name, tag = _split_tag(source, rest)
            return cls(source, name, tag, params, True, text)
        if looks_like_path(raw):
            prefixed = False
            return cls("local", raw, None, params, prefixed, text)
        raise UsageError(
            f"model id {model_id!r} has no source prefix",
            hint="write source:name, e.g. timm:resnet18, torchvision:resnet50, hf:org/name, pkg:efficientnet_lite0, "
            "local:/path/model.onnx",
        )

    @property
    def ref(self) -> str:
        """The name the source's loader takes: name with its tag (``resnet50.a1_in1k``, ``org/name@rev``)."""
        if self.tag is None:
            return self.name
        return f"{self.name}{'@' if self.source == 'hf' else '.'}{self.tag}"

    @property
    def base(self) -> str:
        """The id without its ``?`` options (``timm:resnet50.a1_in1k``), as the catalog lists it."""
        return str(self).split("?", 1)[0]

    @property
    def options(self) -> dict[str, str]:
        """The ``?key=value`` options as a dict (a repeated key keeps its last value)."""
        return dict(self.params)

    @property
    def path(self) -> Path | None:
        """The file or folder of a ``local`` id (``~`` expanded), else None."""
        return Path(self.name).expanduser() if self.source == "local" else None

    def __str__(self) -> str:
        if self.text:
            return self.text
        head = f"{self.source}:{self.ref}" if self.prefixed else self.ref
        return f"{head}?{urlencode(self.params)}" if self.params else head


def _split_tag(source: str, rest: str) -> tuple[str, str | None]:
    if source in _DOT_TAGGED:
        name, dot, tag = rest.partition(".")
        return name, (tag if dot else None)
    if source == "hf" and not rest.startswith(_PATH_STARTS):
        name, at, rev = rest.partition("@")
        return name, (rev if at else None)
    return rest, None


def model_source(model_id: str | ModelId) -> str | None:
    """The source of an id, or None when it does not parse (no prefix and not a path)."""
    try:
        return ModelId.parse(model_id).source
    except UsageError:
        return None
