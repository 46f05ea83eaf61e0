"""Decoding one sample: `load_image` (to RGB, bomb guard, reduced as it decodes), `load_audio` (mono, capped)."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from advisor.data.scan import _short, check_pixels, max_image_pixels, open_error
from advisor.data.types import Dataset, Sample, SkipItem
from advisor.errors import DatasetError

if TYPE_CHECKING:
    from PIL import Image

# Largest up/down factor for polyphase resampling; its filter has ~20 x factor taps.
MAX_POLYPHASE_FACTOR = 1024
# Background that transparent pixels are composited on (white: what viewers show for "no content").
ALPHA_BACKGROUND = (255, 255, 255)
# Decoded images are box-reduced right after decoding while their shorter side stays >= REDUCE_KEEP x the
# model's input side (and >= REDUCE_MIN_SIDE px), so a batch never holds full-size decodes: 16 PNGs of
# 9000x9000 px (243 MB each decoded) took `advisor features` to 6 GB.
REDUCE_KEEP = 4
REDUCE_MIN_SIDE = 1024
DEFAULT_INPUT_SIDE = 224
_REDUCE_FIRST_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "YCbCr"})
# Audio clips are decoded up to this many seconds ($ADVISOR_MAX_AUDIO_SECONDS); see `max_audio_seconds`.
DEFAULT_MAX_AUDIO_SECONDS = 30.0
# A stereo mix keeping less than this share of the channels' mean energy (-60 dB) means the channels cancel.
CANCEL_RATIO = 1e-6


def _sample_path(sample: Sample | str | os.PathLike, what: str) -> Path:
    if isinstance(sample, Sample):
        if sample.path is None:
            raise DatasetError(
                f"sample {sample.id!r} has no file (a text sample?)", hint=f"{what} needs media samples"
            )
        return Path(sample.path)
    return Path(sample)


def load_image(sample: Sample | str | os.PathLike, *, min_side: int | None = None) -> Image.Image:
    """Decode one image fully and return it as an 8-bit RGB PIL image.

    Mode handling: alpha (RGBA, LA, PA, palette with transparency) is composited on white; palette images
    are expanded; 16-bit and 32-bit integer greyscale is scaled to 8 bits (65535 -> 255); float images are
    scaled from their [0, 1] or min-max range; CMYK/YCbCr/LAB are converted; EXIF orientation is applied;
    multi-frame files give their first frame.

    Args:
        sample: a `Sample` with a path, or a file path.
        min_side: shrink large images while decoding, as long as the shorter side stays >= `min_side`:
            JPEGs are decoded downscaled by a power of two (DCT scaling, ``Image.draft``), then any image
            whose shorter side is at least twice `min_side` is box-reduced by an integer factor
            (``Image.reduce``) right after decoding, so one full-size decode is alive only while this call
            runs. Pixels then differ slightly from a full decode followed by a resize; images whose shorter
            side is under ``2 * min_side`` are returned exactly as without it. None (default) decodes at
            full size. `decode_min_side` gives the value for a model's input size.

    Returns:
        A loaded (not lazy) ``PIL.Image.Image`` in mode ``"RGB"``.

    Raises:
        SkipItem: the file is missing, unreadable, truncated/corrupt, or over the pixel limit
            ($ADVISOR_MAX_IMAGE_PIXELS, default ~89.5 Mpx: decompression-bomb guard).
        DatasetError: `sample` has no file (a text sample).
    """
    from PIL import Image, ImageOps

    path = _sample_path(sample, "load_image")
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
        with im:
            w, h = im.size
            check_pixels(path, w, h, limit)
            if min_side is not None and im.format == "JPEG" and min(w, h) >= 2 * min_side:
                scale = min(w, h) / min_side
                im.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
            im.load()
            out = _reduce(im, min_side) if min_side is not None else im
            out = to_rgb(ImageOps.exif_transpose(out) or out)
            return out.copy() if out is im else out  # `im` is closed on leaving the block
    except SkipItem:
        raise
    except (FileNotFoundError, PermissionError) as e:
        raise open_error(path, e) from None
    except Image.DecompressionBombError as e:
        raise SkipItem(path, f"image too large (decompression-bomb guard): {e}", "too-large") from None
    except MemoryError:
        raise SkipItem(path, "not enough memory to decode this image", "too-large") from None
    except Exception as e:  # noqa: BLE001 - any decoder error (truncated, corrupt, unsupported) skips the item
        raise SkipItem(path, f"cannot decode image: {_short(e, path)}", "corrupt") from None


def decode_min_side(input_size: int | tuple[int, ...] | None) -> int:
    """The `load_image` ``min_side`` for a model whose input is `input_size` pixels (side or (h, w) or (c, h, w)).

    ``REDUCE_KEEP`` times the model's largest input side, and at least ``REDUCE_MIN_SIDE``: the model's own
    resize (typically to ``side / crop_pct``) then still downsamples from at least four times its target, so
    the reduction changes features only within float noise, and images up to twice that side (the common
    case) are decoded exactly as before. An unknown input size counts as ``DEFAULT_INPUT_SIDE``.
    """
    if input_size is None:
        side = DEFAULT_INPUT_SIDE
    elif isinstance(input_size, int):
        side = input_size
    else:
        side = max(int(v) for v in input_size[-2:])
    return max(REDUCE_KEEP * side, REDUCE_MIN_SIDE)


def reduce_factor(size: tuple[int, int], min_side: int) -> int:
    """The integer box-reduction factor for an image of `size` (w, h): 1 (none) unless its shorter side is at
    least ``2 * min_side``; the reduced shorter side stays >= `min_side`."""
    return max(1, min(size) // max(1, int(min_side)))


def _reduce(im: Image.Image, min_side: int) -> Image.Image:
    """`im` box-reduced by `reduce_factor` (itself when the factor is 1).

    8-bit modes are reduced before the RGB conversion (alpha is premultiplied by Pillow, so compositing on
    white afterwards is right); palette, 16/32-bit, float and keyed-transparency images are converted first,
    because averaging palette indexes or values before their rescaling would be wrong.
    """
    k = reduce_factor(im.size, min_side)
    if k < 2:
        return im
    if im.mode in _REDUCE_FIRST_MODES and "transparency" not in im.info:
        return im.reduce(k)
    return to_rgb(im).reduce(k)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a loaded PIL image of any mode to 8-bit RGB (see `load_image` for the rules)."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        arr = arr.astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            hi = float(arr.max()) if arr.size else 0.0
            lo = float(arr.min()) if arr.size else 0.0
            if lo >= 0 and hi <= 255:
                pass
            elif lo >= 0 and hi <= 65535:
                arr = arr / 257.0
            else:
                arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        else:  # F: 32-bit float
            finite = arr[np.isfinite(arr)]
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
            arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
            arr = arr * 255.0 if lo >= 0 and hi <= 1.0 else (arr - lo) / max(hi - lo, 1e-12) * 255.0
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, I;16 variants handled above


def max_audio_seconds() -> float:
    """The longest stretch of a clip that is decoded, in seconds ($ADVISOR_MAX_AUDIO_SECONDS, default 30).

    Longer clips are cut to their first `max_audio_seconds` (Whisper's own window is 30 s; a 10-minute clip
    decoded whole took ~1 GB and an attention encoder's cost grows with the square of its length).
    """
    try:
        value = float(os.environ.get("ADVISOR_MAX_AUDIO_SECONDS", DEFAULT_MAX_AUDIO_SECONDS))
    except ValueError:
        value = DEFAULT_MAX_AUDIO_SECONDS
    return value if value > 0 and math.isfinite(value) else DEFAULT_MAX_AUDIO_SECONDS


def load_audio(
    sample: Sample | str | os.PathLike, sample_rate: int, *, max_seconds: float | None = None
) -> np.ndarray:
    """Decode one audio clip as mono float32 in [-1, 1] at `sample_rate` Hz.

    Channels are averaged; when they cancel out (phase-inverted stereo, L = -R, whose average is silence
    although each channel is not), the loudest channel is used instead. Resampling uses a polyphase FIR
    filter (`scipy.signal.resample_poly`, Kaiser window), which band-limits properly when downsampling.

    Args:
        sample: a `Sample` with a path, or a file path.
        sample_rate: target rate in Hz (e.g. 16000).
        max_seconds: decode only the first `max_seconds` of the clip (the rest is never read); None (default)
            decodes all of it. See `max_audio_seconds`.

    Returns:
        A 1-D float32 array.

    Raises:
        SkipItem: missing, unreadable, corrupt, zero-length or digitally silent (all-zero) clip.
        DatasetError: `sample` has no file, or `sample_rate` is not positive.
    """
    import soundfile as sf

    path = _sample_path(sample, "load_audio")
    if int(sample_rate) <= 0:
        raise DatasetError(
            f"invalid sample rate {sample_rate}", hint="pass a positive rate in Hz, e.g. 16000"
        )
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = int(fh.samplerate)
            frames = -1 if max_seconds is None else max(1, int(math.ceil(max_seconds * sr)))
            data = fh.read(frames=frames, dtype="float32", always_2d=True)
    except (FileNotFoundError, PermissionError) as e:
        raise open_error(path, e) from None
    except MemoryError:
        raise SkipItem(path, "not enough memory to decode this clip", "too-large") from None
    except Exception as e:  # noqa: BLE001 - libsndfile errors: corrupt/truncated/unsupported
        if not path.exists():
            raise SkipItem(path, "file not found", "missing-file") from None
        raise SkipItem(path, f"cannot decode audio: {_short(e, path)}", "corrupt") from None
    if data.shape[0] == 0:
        raise SkipItem(path, "zero-length audio (no samples)", "zero-length-audio")
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
    wave = _mixdown(data)
    if not np.any(wave):
        raise SkipItem(path, "silent clip (every sample is zero)", "silent-audio")
    sample_rate = int(sample_rate)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), sample_rate)
        up, down = sample_rate // g, int(sr) // g
        if max(up, down) <= MAX_POLYPHASE_FACTOR:
            wave = resample_poly(wave.astype(np.float64), up, down)
        else:  # odd rates (e.g. 44101 Hz): a polyphase filter that long would be slow; FFT resampling instead
            from scipy.signal import resample

            wave = resample(wave.astype(np.float64), max(1, round(len(wave) * sample_rate / sr)))
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)


def _mixdown(data: np.ndarray) -> np.ndarray:
    """Mono from (frames, channels): the channel average, or the loudest channel when the average keeps less
    than ``CANCEL_RATIO`` of the channels' energy (they cancel: phase-inverted stereo)."""
    if data.shape[1] == 1:
        return data[:, 0]
    wave = data.mean(axis=1)
    energy = np.square(data, dtype=np.float64).sum(axis=0)
    if energy.max() > 0 and float(np.square(wave, dtype=np.float64).sum()) < CANCEL_RATIO * energy.mean():
        return np.ascontiguousarray(data[:, int(np.argmax(energy))])
    return wave


def count_long_clips(dataset: Dataset, samples: Sequence[Sample], max_seconds: float) -> int:
    """How many of `samples` (audio) last longer than `max_seconds`, from the dataset's header scan
    (``media_info``) or, where it has none, the file's header; unreadable files do not count."""
    import soundfile as sf

    n = 0
    for s in samples:
        meta = dataset.media_info.get(s.id)
        try:
            if meta and meta.get("sample_rate"):
                frames, sr = int(meta["frames"]), int(meta["sample_rate"])
            elif s.path is not None:
                info = sf.info(str(s.path))
                frames, sr = int(info.frames), int(info.samplerate)
            else:
                continue
        except Exception:  # noqa: BLE001 - an unreadable file is skipped when decoded, not counted here
            continue
        n += sr > 0 and frames > max_seconds * sr
    return n


def audio_cut_note(dataset: Dataset, samples: Sequence[Sample], max_seconds: float) -> dict[str, float | int]:
    """``{"max_seconds", "clips"}``: the cap and how many of `samples` it cut (`count_long_clips`); a cut is
    logged once as a warning that names the setting to change."""
    n = count_long_clips(dataset, samples, max_seconds)
    if n:
        logging.getLogger(__name__).warning(
            "%d clip(s) longer than %g s: only their first %g s were encoded (set ADVISOR_MAX_AUDIO_SECONDS "
            "to change)",
            n,
            max_seconds,
            max_seconds,
        )
    return {"max_seconds": max_seconds, "clips": n}
