"""Decoding one sample: `load_image` (any mode to RGB, bomb guard) and `load_audio` (mono float32, resampled)."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from advisor.data.scan import _short, max_image_pixels
from advisor.data.types import Sample, SkipItem
from advisor.errors import DatasetError

if TYPE_CHECKING:
    from PIL import Image

# Largest up/down factor for polyphase resampling; its filter has ~20 x factor taps.
MAX_POLYPHASE_FACTOR = 1024
# Background that transparent pixels are composited on (white: what viewers show for "no content").
ALPHA_BACKGROUND = (255, 255, 255)


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
        min_side: optional speed-up for large JPEGs: let the decoder downscale by a power of two (DCT scaling,
            ``Image.draft``) as long as the shorter side stays >= `min_side`. Pass the model's resize target
            (e.g. 256 for a 224 crop); pixels then differ slightly from a full decode followed by a resize.
            None (default) decodes at full size.

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
            if w * h > limit:
                raise SkipItem(
                    path,
                    f"image too large: {w}x{h} = {w * h / 1e6:.0f} Mpx > {limit / 1e6:.0f} Mpx limit "
                    "(decompression-bomb guard; raise $ADVISOR_MAX_IMAGE_PIXELS to accept it)",
                    "too-large",
                )
            if min_side is not None and im.format == "JPEG" and min(w, h) >= 2 * min_side:
                scale = min(w, h) / min_side
                im.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
            im.load()
            out = to_rgb(ImageOps.exif_transpose(im) or im)
            return out.copy() if out is im else out  # `im` is closed on leaving the block
    except SkipItem:
        raise
    except FileNotFoundError:
        raise SkipItem(
            path, "file not found (deleted after the dataset was scanned?)", "missing-file"
        ) from None
    except PermissionError as e:
        raise SkipItem(path, f"permission denied: {e.strerror or e}", "unreadable") from None
    except Image.DecompressionBombError as e:
        raise SkipItem(path, f"image too large (decompression-bomb guard): {e}", "too-large") from None
    except MemoryError:
        raise SkipItem(path, "not enough memory to decode this image", "too-large") from None
    except Exception as e:  # noqa: BLE001 - any decoder error (truncated, corrupt, unsupported) skips the item
        raise SkipItem(path, f"cannot decode image: {_short(e, path)}", "corrupt") from None


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


def load_audio(sample: Sample | str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode one audio clip as mono float32 in [-1, 1] at `sample_rate` Hz.

    Channels are averaged; resampling uses a polyphase FIR filter (`scipy.signal.resample_poly`, Kaiser window),
    which band-limits properly when downsampling.

    Args:
        sample: a `Sample` with a path, or a file path.
        sample_rate: target rate in Hz (e.g. 16000).

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
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise SkipItem(
            path, "file not found (deleted after the dataset was scanned?)", "missing-file"
        ) from None
    except PermissionError as e:
        raise SkipItem(path, f"permission denied: {e.strerror or e}", "unreadable") from None
    except MemoryError:
        raise SkipItem(path, "not enough memory to decode this clip", "too-large") from None
    except Exception as e:  # noqa: BLE001 - libsndfile errors: corrupt/truncated/unsupported
        if not path.exists():
            raise SkipItem(path, "file not found", "missing-file") from None
        raise SkipItem(path, f"cannot decode audio: {_short(e, path)}", "corrupt") from None
    if data.shape[0] == 0:
        raise SkipItem(path, "zero-length audio (no samples)", "zero-length-audio")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        wave = np.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0)
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
