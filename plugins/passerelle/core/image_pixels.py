"""The photo renderer's pixels: decode a source, bring it to sRGB, resize it into each format's
box, lay it on the background, encode it (Pillow, NumPy; no I/O but the source file).

The public face is :func:`passerelle.core.images.render`; this module holds its steps, so that
the settings, names and chunks (:mod:`passerelle.core.images`) and the plan against the shop's
snapshot (:mod:`passerelle.core.image_plan`) read apart from the image processing:

- :func:`open_source`: one decode, accepted formats only, bombs refused (``images.max_pixels``);
- :func:`derive`: EXIF orientation, every colour mode (CMYK, palette, greyscale, alpha, 16-bit,
  embedded ICC profiles) to sRGB RGB, each format resized from the smallest adequate
  intermediate with Lanczos (:func:`lanczos`: libvips's vectorised Lanczos 3 for RGB, Pillow's
  for alpha and crop boxes; a box reduction first for big reductions, as both libraries do);
- :func:`encode`: JPEG or WebP without any metadata (no EXIF, ICC, XMP or comment).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

#: Source formats opened (Pillow plugin names). Others, such as EPS (which would start
#: Ghostscript) or obscure formats with rarely exercised parsers, are refused as not an image.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", "AVIF", "JPEG2000")
#: Resampling filter of the resizes Pillow does (alpha, crop boxes).
RESAMPLE = Image.Resampling.LANCZOS
#: ``resize(reducing_gap=...)``: for big reductions, ``Image.reduce`` (box average by an integer
#: factor) runs first while the remaining Lanczos step stays >= this factor. 3.0 is documented by
#: Pillow as indistinguishable from a full Lanczos resize.
REDUCING_GAP = 3.0
#: The same filter in libvips (``vips_resize`` with ``gap=REDUCING_GAP``: its box shrink first
#: exactly as Pillow's; its default gap of 2 loses up to 4 dB on fine stripes). Its convolution is
#: vectorised: about 4x Pillow's on a 1500x1000 -> 1200x800 resize here, 2.5x on 1200x800 ->
#: 250x167, for the same result (both within 0.5 dB PSNR of Pillow's against a Lanczos of the
#: full-size decode; tests/core/test_images.py, "resampling quality").
VIPS_KERNEL = "lanczos3"

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter
_ORIENTATION_TAG = 0x0112


class BadImage(ValueError):
    """A source that cannot be rendered: not an image, truncated, corrupt, too big (bomb).

    ``reason`` is a sentence for the user (what is wrong and, when known, what was expected).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FormatSpec:
    """One output format: a box of ``width`` x ``height`` and how the photo goes in it."""

    name: str
    width: int
    height: int
    mode: str = "fit"
    background: tuple[int, int, int] = (255, 255, 255)
    upscale: bool = False


@functools.cache
def _openers() -> tuple[str, ...]:
    """The accepted formats this Pillow build can open (plugins registered on first use)."""
    Image.init()
    return tuple(f for f in ACCEPTED_FORMATS if f in Image.OPEN)


def open_source(source: bytes | str | os.PathLike[str], max_pixels: int) -> Image.Image:
    """The source (bytes or a file path) opened lazily by Pillow, among :data:`ACCEPTED_FORMATS`;
    :class:`BadImage` for an empty, unidentified or corrupt source or one over *max_pixels*."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise BadImage("empty source: no bytes")
        fp: Any = io.BytesIO(source)
    else:
        fp = os.fspath(source)
    try:
        im = Image.open(fp, formats=_openers())
    except FileNotFoundError:
        raise BadImage(f"source file not found: {fp}") from None
    except UnidentifiedImageError:
        raise BadImage(f"not an image: the bytes match none of the accepted formats {', '.join(_openers())}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"decompression bomb refused: {exc}") from None
    except Exception as exc:  # Pillow's parsers raise many types on corrupt headers
        raise BadImage(f"unreadable image header ({type(exc).__name__}: {exc})") from None
    width, height = im.size
    if width < 1 or height < 1:
        im.close()
        raise BadImage(f"image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        im.close()
        raise BadImage(
            f"decompression bomb refused: {im.format} declares {width}x{height} = {width * height / 1e6:.1f} Mpx, "
            f"more than the limit of {max_pixels / 1e6:.1f} Mpx (images.max_pixels)"
        )
    return im


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block does not spoil the pixels
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _plan_box(spec: FormatSpec, size: tuple[int, int]) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
    """Region of the (oriented, full-size) source to use and the size it is resized to."""
    ow, oh = size
    if spec.mode == "crop":
        scale = max(spec.width / ow, spec.height / oh)
        if not spec.upscale:
            scale = min(scale, 1.0)
        bw, bh = min(ow, spec.width / scale), min(oh, spec.height / scale)
        box = ((ow - bw) / 2, (oh - bh) / 2, (ow + bw) / 2, (oh + bh) / 2)
        out = (max(1, min(spec.width, round(bw * scale))), max(1, min(spec.height, round(bh * scale))))
        return box, out
    scale = min(spec.width / ow, spec.height / oh)
    if not spec.upscale:
        scale = min(scale, 1.0)
    out = (max(1, min(spec.width, round(ow * scale))), max(1, min(spec.height, round(oh * scale))))
    return (0.0, 0.0, float(ow), float(oh)), out


def _draft_size(specs: Iterable[FormatSpec], size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Smallest full-frame resolution every format can be resized from without enlarging."""
    ow, oh = size
    need_w = need_h = 1.0
    for spec in specs:
        (x0, y0, x1, y1), (w, h) = _plan_box(spec, size)
        need_w = max(need_w, w * ow / (x1 - x0))
        need_h = max(need_h, h * oh / (y1 - y0))
    need = (math.ceil(need_w), math.ceil(need_h))
    return (need[1], need[0]) if orientation in _SWAPS_AXES else need


def _scale_to_l(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale to 8-bit L, scaled rather than clipped."""
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        top = float(np.nanmax(arr)) if arr.size else 0.0
        arr = np.nan_to_num(arr * 255.0 if top <= 1.0 else arr)
    elif im.mode in _SIXTEEN_BIT or (arr.size and int(arr.max()) > 255):
        arr = np.clip(arr.astype(np.int64), 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=16)
def _icc_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Transform from an embedded profile to sRGB (None: already sRGB). Cached per profile."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if mode != "CMYK":
        try:
            if ImageCms.getProfileDescription(profile).strip().lower().startswith("srgb"):
                return None
        except ImageCms.PyCMSError:
            pass
    return ImageCms.buildTransform(profile, _srgb_profile(), mode, "RGB")


def _apply_icc(im: Image.Image, icc: bytes) -> Image.Image | None:
    """``im`` (RGB, RGBA or CMYK) converted to sRGB through its profile; None when not possible."""
    alpha = im.getchannel("A") if im.mode == "RGBA" else None
    base = im.convert("RGB") if alpha is not None else im
    try:
        transform = _icc_transform(bytes(icc), base.mode)
        if transform is None:
            return im if alpha is not None or im.mode == "RGB" else None
        out = ImageCms.applyTransform(base, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.debug("embedded ICC profile not usable (%s), plain conversion instead", exc)
        return None
    assert out is not None
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _to_srgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB, or RGBA when the source has transparency."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        im, icc = _scale_to_l(im), None
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif mode in ("LA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
    if icc and im.mode in ("RGB", "RGBA", "CMYK"):
        converted = _apply_icc(im, icc)
        if converted is not None:
            return converted
    if im.mode in ("RGB", "RGBA"):
        return im
    try:
        return im.convert("RGB")
    except ValueError:
        if im.mode == "LAB":
            out = ImageCms.profileToProfile(im, ImageCms.createProfile("LAB"), _srgb_profile(), outputMode="RGB")
            assert out is not None
            return out
        raise BadImage(f"unsupported colour mode {im.mode!r}; expected RGB, CMYK, greyscale or palette") from None


def _compose(content: Image.Image, spec: FormatSpec) -> Image.Image:
    """Lay the resized photo on the format's background: exact box for pad and crop."""
    mask = content.getchannel("A") if content.mode == "RGBA" else None
    if spec.mode == "fit":
        if mask is None:
            return content
        canvas = Image.new("RGB", content.size, spec.background)
        canvas.paste(content.convert("RGB"), (0, 0), mask)
        return canvas
    canvas = Image.new("RGB", (spec.width, spec.height), spec.background)
    at = ((spec.width - content.width) // 2, (spec.height - content.height) // 2)
    canvas.paste(content.convert("RGB") if mask is not None else content, at, mask)
    return canvas


def encode(im: Image.Image, image_format: str, quality: int, *, progressive: bool, optimize: bool) -> bytes:
    """*im* as JPEG or WebP bytes, RGB, without any metadata of the source."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    im.info = {}  # JPEG would carry an inherited comment; nothing of the source may leak
    buf = io.BytesIO()
    if image_format == "jpeg":
        im.save(buf, "JPEG", quality=quality, optimize=optimize, progressive=progressive)
    else:
        im.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


@functools.cache
def _vips() -> Any:
    """pyvips, loaded on first resize (libvips costs ~50 ms to load: not at DAG import).

    One thread per process (the renderer runs one process per core) and no operation cache
    (each photo is seen once; the cache would only hold its pixels).
    """
    import pyvips

    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    return pyvips


def lanczos(base: Image.Image, out: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """*base* (RGB or RGBA) resized to *out* with Lanczos 3, *box* being the region used.

    An RGB image over its whole frame (fit and pad, the usual case) goes through libvips; RGBA
    (Pillow resamples it premultiplied) and crop boxes (fractional origins) stay with Pillow.
    """
    whole = box == (0.0, 0.0, float(base.width), float(base.height))
    if base.mode != "RGB" or not whole or out == base.size:
        return base.resize(out, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    pyvips = _vips()
    src = pyvips.Image.new_from_memory(base.tobytes(), base.width, base.height, 3, "uchar")
    scaled = src.resize(out[0] / base.width, vscale=out[1] / base.height, kernel=VIPS_KERNEL, gap=REDUCING_GAP)
    if (scaled.width, scaled.height) != out:  # vips rounds the scaled size: never off by one
        scaled = scaled.crop(0, 0, min(out[0], scaled.width), min(out[1], scaled.height))
        if (scaled.width, scaled.height) != out:
            return base.resize(out, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    return Image.frombuffer("RGB", out, scaled.write_to_memory(), "raw", "RGB", 0, 1)


def derive(im: Image.Image, specs: tuple[FormatSpec, ...]) -> Iterator[tuple[FormatSpec, Image.Image]]:
    """Decode once (JPEG draft at the largest need), then derive each format, largest first."""
    stored = im.size
    if im.format in ("JPEG", "MPO"):  # EXIF sits before the scan: known before decoding
        orientation = _orientation(im)
        size = (stored[1], stored[0]) if orientation in _SWAPS_AXES else stored
        im.draft("RGB", _draft_size(specs, size, orientation))
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"decompression bomb refused: {exc}") from None
    except OSError as exc:
        raise BadImage(f"truncated or corrupt image data ({exc})") from None
    except Exception as exc:
        raise BadImage(f"corrupt image data ({type(exc).__name__}: {exc})") from None
    decoded_size = im.size
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as exc:  # damaged EXIF: keep the pixels as stored
        log.debug("EXIF orientation ignored: %s", exc)
    # Full-size dimensions as displayed, from what the transpose actually did.
    turned = im.size != decoded_size
    size = (stored[1], stored[0]) if turned else stored
    decoded = _to_srgb(im)
    bases = [decoded]  # full-frame intermediates, largest first
    ordered = sorted(specs, key=lambda s: _plan_box(s, size)[1][0] * _plan_box(s, size)[1][1], reverse=True)
    for spec in ordered:
        (x0, y0, x1, y1), out = _plan_box(spec, size)
        base = decoded
        for candidate in reversed(bases):  # smallest first
            if candidate.width * (x1 - x0) / size[0] >= out[0] and candidate.height * (y1 - y0) / size[1] >= out[1]:
                base = candidate
                break
        fx, fy = base.width / size[0], base.height / size[1]
        box = (x0 * fx, y0 * fy, x1 * fx, y1 * fy)
        content = lanczos(base, out, box)
        if spec.mode != "crop":
            bases.append(content)
        yield spec, _compose(content, spec)
