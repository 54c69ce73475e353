"""Photo renderer: the back office's photos turned into the shop's formats.

Pure functions over bytes, files and DataFrames; no Airflow import, so they test in milliseconds
and a DAG maps them over chunks (dynamic task mapping) without carrying state.

The flow, per run:

1. List the sources (ERP query): ``image_key, reference, position`` plus either the bytes'
   ``source_hash`` (computed in SQL: ``encode(sha256(data), 'hex')`` is the same value as
   :func:`source_hash`) or a ``path`` (:func:`fingerprint_files` hashes only files whose size or
   mtime moved since the previous run).
2. :func:`plan_images` compares with the snapshot of what the shop last received: what to render,
   what is unchanged, which renders to remove.
3. :func:`chunk_items` cuts the render list into XCom-sized chunks; each mapped task calls
   :func:`render_chunk`, which renders one photo at a time, hands each file to a ``sink`` (the
   uploader) and reports bad sources (with their article reference) instead of failing.
4. :func:`snapshot_after` gives the next snapshot; :func:`summarize` the run's counts.

Rendering (:func:`render`): one decode per photo (JPEG draft mode at the largest target size),
EXIF orientation applied, every colour mode (CMYK, palette, greyscale, alpha, 16-bit, embedded ICC
profiles) brought to sRGB RGB, each format resized from the smallest adequate intermediate with
Lanczos (``reduce`` first for big non-JPEG sources), alpha laid on the format's background, and
encoded without any metadata (no EXIF, ICC, XMP or comment).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

#: Largest source accepted, in pixels (width x height as declared by the file). Bigger is treated
#: as a decompression bomb. A 80 Mpx source already needs ~240 MB to decode when it is not a JPEG.
DEFAULT_MAX_PIXELS = 80_000_000
#: Render modes of a format: fit (within the box, aspect kept), pad (fit, then centred on a
#: canvas of exactly the box in the background colour), crop (fill the box, centre cropped).
MODES = ("fit", "pad", "crop")
#: Source formats opened (Pillow plugin names). Others, such as EPS (which would start
#: Ghostscript) or obscure formats with rarely exercised parsers, are refused as not an image.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", "AVIF", "JPEG2000")
#: Output encodings and their file extension.
EXTENSIONS = {"jpeg": "jpg", "webp": "webp"}
#: Resampling filter for every resize.
RESAMPLE = Image.Resampling.LANCZOS
#: ``resize(reducing_gap=...)``: for big reductions, ``Image.reduce`` (box average by an integer
#: factor) runs first while the remaining Lanczos step stays >= this factor. 3.0 is documented by
#: Pillow as indistinguishable from a full Lanczos resize.
REDUCING_GAP = 3.0
#: Columns of a listing and of the snapshot that :func:`plan_images` compares.
PLAN_COLUMNS = ("image_key", "reference", "position", "source_hash")
#: A render's place: one article (or variant) reference and the photo's position (0 = cover).
SLOT = ["reference", "position"]

_FORMAT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_MAX = 80
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


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FormatSpec:
    """One output format: a box of ``width`` x ``height`` and how the photo goes in it."""

    name: str
    width: int
    height: int
    mode: str = "fit"
    background: tuple[int, int, int] = (255, 255, 255)
    upscale: bool = False


@dataclass(frozen=True)
class ImageSettings:
    """The ``images`` section of the configuration, checked (see :func:`image_settings`)."""

    formats: tuple[FormatSpec, ...]
    image_format: str = "jpeg"
    quality: int = 85
    chunk_size: int = 200
    max_pixels: int = DEFAULT_MAX_PIXELS
    progressive: bool = False
    optimize: bool = True

    @property
    def ext(self) -> str:
        """File extension of the renders (``jpg`` or ``webp``)."""
        return EXTENSIONS[self.image_format]

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes the rendered bytes.

        Store it with the snapshot: when it differs from the previous run's, run full
        (``plan_images(..., full=True)``), since unchanged sources would otherwise keep old renders.
        """
        fields = dataclasses.asdict(self)
        fields.pop("chunk_size")
        blob = json.dumps(fields, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def image_settings(cfg: Any) -> ImageSettings:
    """The ``images`` section as :class:`ImageSettings` (what the renderer needs).

    ``cfg`` is the typed section (``Settings.images``), the whole :class:`passerelle.config.Settings`,
    or, for the renderer's callers that name formats in place, a raw ``images`` section
    (``{"formats": {...}, "quality": 60}``), checked by the configuration model, which raises
    ``passerelle.config.ConfigError`` naming the key (``images.<key>``) and the value.
    """
    if isinstance(cfg, ImageSettings):
        return cfg
    from passerelle.config import ImagesSection, section_settings

    section = section_settings(cfg, "images", ImagesSection)
    return ImageSettings(
        formats=tuple(FormatSpec(name, f.width, f.height, f.mode, f.rgb, f.upscale)
                      for name, f in section.formats.items()),
        image_format=section.format,
        quality=section.quality,
        chunk_size=section.chunk_size,
        max_pixels=section.max_pixels,
        progressive=section.progressive,
        optimize=section.optimize,
    )


# --------------------------------------------------------------------------- hashes and names


def source_hash(data: bytes) -> str:
    """SHA-256 of a source's bytes, in hex: the same value as PostgreSQL's ``encode(sha256(b), 'hex')``."""
    return hashlib.sha256(data).hexdigest()


def stat_signature(path: str | os.PathLike[str]) -> str | None:
    """Cheap change marker of a file: ``"<size>-<mtime_ns>"``, or None when the file is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}-{st.st_mtime_ns}"


def _file_hash(path: str | os.PathLike[str]) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def fingerprint_files(listing: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add ``stat_signature`` and ``source_hash`` to a listing of file sources (column ``path``).

    A file whose path and stat signature are the same as in ``previous`` (a snapshot with columns
    ``path, stat_signature, source_hash``) keeps its previous hash without being read, so a rerun
    with nothing changed costs one ``stat`` per file. Other files are read and hashed. A missing
    file gets no hash (None): :func:`plan_images` then plans it and :func:`render_chunk` reports it.
    """
    if "path" not in listing.columns:
        raise ValueError(f"fingerprint_files: the listing needs a 'path' column; it has {list(listing.columns)}")
    out = listing.copy()
    paths = out["path"].astype(str)
    out["stat_signature"] = pd.Series([stat_signature(p) for p in paths], index=out.index, dtype=object)
    hashes = pd.Series([None] * len(out), index=out.index, dtype=object)
    wanted = {"path", "stat_signature", "source_hash"}
    if previous is not None and wanted <= set(previous.columns) and len(previous):
        known = previous.loc[previous["stat_signature"].notna(), ["path", "stat_signature", "source_hash"]]
        known = known.astype({"path": str, "stat_signature": str}).drop_duplicates(["path", "stat_signature"])
        lookup = pd.MultiIndex.from_frame(known[["path", "stat_signature"]])
        keys = pd.MultiIndex.from_arrays([paths, out["stat_signature"].astype(str)])
        at = lookup.get_indexer(keys)
        found = at >= 0
        hashes[found] = known["source_hash"].to_numpy()[at[found]]
    todo = hashes.isna() & out["stat_signature"].notna()
    for idx in out.index[todo]:
        hashes[idx] = _file_hash(paths[idx])
    out["source_hash"] = hashes
    return out


def _slug(reference: str) -> str:
    ascii_ref = unicodedata.normalize("NFKD", reference).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_ref).strip("-._")[:_SLUG_MAX].strip("-._")
    if slug != reference:
        # Characters were replaced or dropped: two references could now meet; a short hash of
        # the original keeps every name unique and still stable from run to run.
        digest = hashlib.sha256(reference.encode("utf-8")).hexdigest()[:10]
        slug = f"{slug}-{digest}" if slug else digest
    return slug


def render_name(reference: str, position: int, format_name: str, ext: str) -> str:
    """Stable, URL- and filesystem-safe file name of one render: ``<ref>_<position>_<format>.<ext>``.

    The reference keeps its letters, digits, ``.``, ``-`` and ``_`` (accents folded); anything else
    (``/``, spaces, ...) becomes ``-`` and a 10-hex hash of the original reference is appended, so
    two references never share a name. Never contains a path separator. Case is kept: on a
    case-insensitive server, references differing only by case would meet.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"render_name: reference must be a non-empty string, got {reference!r}")
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or position < 0:
        raise ValueError(f"render_name: position must be an integer >= 0, got {position!r} (reference {reference!r})")
    if not _FORMAT_NAME.match(format_name):
        raise ValueError(f"render_name: format name {format_name!r} must be lowercase letters, digits and '-'")
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise ValueError(f"render_name: extension {ext!r} must be 1-8 lowercase letters or digits, without dot")
    return f"{_slug(reference)}_{int(position)}_{format_name}.{ext}"


# --------------------------------------------------------------------------- rendering


@functools.cache
def _openers() -> tuple[str, ...]:
    """The accepted formats this Pillow build can open (plugins registered on first use)."""
    Image.init()
    return tuple(f for f in ACCEPTED_FORMATS if f in Image.OPEN)


def _open(source: bytes | str | os.PathLike[str], max_pixels: int) -> Image.Image:
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


def _encode(im: Image.Image, image_format: str, quality: int, *, progressive: bool, optimize: bool) -> bytes:
    if im.mode != "RGB":
        im = im.convert("RGB")
    im.info = {}  # JPEG would carry an inherited comment; nothing of the source may leak
    buf = io.BytesIO()
    if image_format == "jpeg":
        im.save(buf, "JPEG", quality=quality, optimize=optimize, progressive=progressive)
    else:
        im.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _render_images(im: Image.Image, specs: tuple[FormatSpec, ...]) -> Iterator[tuple[FormatSpec, Image.Image]]:
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
        content = base.resize(out, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
        if spec.mode != "crop":
            bases.append(content)
        yield spec, _compose(content, spec)


def _as_specs(formats: Mapping[str, Any] | Iterable[FormatSpec] | ImageSettings) -> tuple[FormatSpec, ...]:
    if isinstance(formats, ImageSettings):
        return formats.formats
    if isinstance(formats, Mapping):
        if "formats" in formats:
            return image_settings(formats).formats
        return image_settings({"formats": formats}).formats
    return tuple(formats)


def render(
    data: bytes | str | os.PathLike[str],
    formats: Mapping[str, Any] | Iterable[FormatSpec],
    *,
    image_format: str = "jpeg",
    quality: int = 85,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progressive: bool = False,
    optimize: bool = True,
) -> dict[str, bytes]:
    """Render one source (bytes, or a file path) to every format; returns encoded bytes per format name.

    ``formats`` is the configuration's ``images.formats`` mapping (or :class:`FormatSpec` objects).
    Raises :class:`BadImage` for an empty, truncated, corrupt or non-image source, or one declaring
    more than ``max_pixels`` pixels (decompression bomb; Pillow's own bomb warning counts too).
    """
    if image_format not in EXTENSIONS:
        raise ValueError(f"render: image_format is {image_format!r}; expected one of {tuple(EXTENSIONS)}")
    specs = _as_specs(formats)
    results: dict[str, bytes] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(data, max_pixels) as im:
            for spec, out in _render_images(im, specs):
                results[spec.name] = _encode(out, image_format, quality, progressive=progressive, optimize=optimize)
    return {spec.name: results[spec.name] for spec in specs}


def render_with(data: bytes | str | os.PathLike[str], settings: ImageSettings) -> dict[str, bytes]:
    """:func:`render` with every option taken from :class:`ImageSettings`."""
    return render(
        data,
        settings.formats,
        image_format=settings.image_format,
        quality=settings.quality,
        max_pixels=settings.max_pixels,
        progressive=settings.progressive,
        optimize=settings.optimize,
    )


# --------------------------------------------------------------------------- one mapped task

#: ``sink(name, data)``: receives each render as soon as it is encoded (upload, write to disk).
Sink = Callable[[str, bytes], None]


def _read_source(item: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The item's bytes and, for a file, its path and stat signature (taken before reading)."""
    content = item.get("content")
    if content is not None:
        return bytes(content), {}
    path = item.get("path")
    if not path:
        raise BadImage("source has neither content (bytes) nor path")
    signature = stat_signature(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise BadImage(f"source file not found: {path}") from None
    except OSError as exc:
        raise BadImage(f"source file unreadable: {path} ({exc.strerror or exc})") from None
    return data, {"path": str(path), "stat_signature": signature}


def iter_render(
    items: Iterable[Mapping[str, Any]], cfg: Mapping[str, Any] | ImageSettings, *, sink: Sink | None = None
) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Render items one at a time; yields ``(rendered, None)`` or ``(None, error)`` per item.

    See :func:`render_chunk` for the shapes. Only one source and its renders are in memory at a time
    (``items`` may be a generator fetching bytes lazily).
    """
    settings = image_settings(cfg)
    for item in items:
        head = {key: item.get(key) for key in ("image_key", "reference", "position")}
        try:
            try:
                names = {
                    spec.name: render_name(head["reference"], head["position"], spec.name, settings.ext)
                    for spec in settings.formats
                }
            except ValueError as exc:
                raise BadImage(f"listing row unusable: {exc}") from None
            head["position"] = int(head["position"])
            data, origin = _read_source(item)
            digest = source_hash(data)
            renders = render_with(data, settings)
        except BadImage as exc:
            log.warning(
                "photo %s of article %s (position %s) skipped: %s",
                head["image_key"], head["reference"], head["position"], exc.reason,
            )
            yield None, {**head, "reason": exc.reason}
            continue
        del data
        files = []
        for spec in settings.formats:
            blob = renders.pop(spec.name)
            entry: dict[str, Any] = {
                "format": spec.name,
                "name": names[spec.name],
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
            if sink is not None:
                sink(names[spec.name], blob)
            else:
                entry["data"] = blob
            files.append(entry)
            del blob
        yield {**head, **origin, "source_hash": digest, "files": files}, None


def render_chunk(
    items: Iterable[Mapping[str, Any]], cfg: Mapping[str, Any] | ImageSettings, *, sink: Sink | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Render one chunk (one mapped task): returns ``(rendered, errors)``.

    ``items``: dicts with ``image_key``, ``reference``, ``position`` and either ``content`` (bytes)
    or ``path``. ``cfg``: the configuration, its ``images`` section or :class:`ImageSettings`.

    ``rendered``: one dict per photo with ``image_key, reference, position, source_hash`` (of the
    bytes actually rendered), ``path`` and ``stat_signature`` for file sources, and ``files``: per
    format ``{format, name, size, sha256}``, plus ``data`` (the bytes) when no ``sink`` is given.
    With a ``sink``, each file is handed over as soon as it is encoded and the result is small
    enough for XCom. An exception raised by the sink (server down) propagates: the task retries.

    ``errors``: one dict per bad source with ``image_key, reference, position, reason``; the
    chunk goes on with the next photo.
    """
    rendered: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for ok, error in iter_render(items, cfg, sink=sink):
        if ok is not None:
            rendered.append(ok)
        else:
            assert error is not None
            errors.append(error)
    return rendered, errors


def summarize(results: Iterable[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> dict[str, Any]:
    """Counts over every chunk's ``(rendered, errors)``: photos rendered, bad sources, files, bytes."""
    rendered = failed = files = size = 0
    errors: list[dict[str, Any]] = []
    for ok, bad in results:
        rendered += len(ok)
        failed += len(bad)
        errors.extend(bad)
        for item in ok:
            files += len(item["files"])
            size += sum(f["size"] for f in item["files"])
    return {"rendered": rendered, "failed": failed, "files": files, "bytes": size, "errors": errors}


# --------------------------------------------------------------------------- planning


@dataclass
class ImagePlan:
    """What a run does: ``render`` (rows of the listing), ``unchanged`` (rows skipped),
    ``remove`` (slots of the snapshot no longer listed: their renders are deleted) and
    ``duplicates`` (listing rows sharing a slot with an earlier row: not rendered, to report)."""

    render: pd.DataFrame
    unchanged: pd.DataFrame
    remove: pd.DataFrame
    duplicates: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Number of rows in each part, for the run's summary."""
        return {
            "render": len(self.render),
            "unchanged": len(self.unchanged),
            "remove": len(self.remove),
            "duplicates": len(self.duplicates),
        }


def _normalise(frame: pd.DataFrame | None, label: str) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS}).astype({"position": "int64"})
    missing = [c for c in PLAN_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"plan_images: {label} lacks column(s) {missing}; it has {list(frame.columns)}, expected {list(PLAN_COLUMNS)}"
        )
    out = frame.reset_index(drop=True)
    bad_ref = out["reference"].isna() | (out["reference"].astype(str).str.strip() == "")
    if bad_ref.any():
        row = out.loc[bad_ref].iloc[0]
        raise ValueError(f"plan_images: {label} has an empty reference (image_key {row['image_key']!r})")
    position = pd.to_numeric(out["position"], errors="coerce")
    if position.isna().any() or (position < 0).any() or (position % 1 != 0).any():
        row = out.loc[position.isna() | (position < 0) | (position % 1 != 0)].iloc[0]
        raise ValueError(
            f"plan_images: {label} row image_key {row['image_key']!r} (reference {row['reference']!r}) "
            f"has position {row['position']!r}; expected an integer >= 0"
        )
    return out.assign(reference=out["reference"].astype(str), position=position.astype("int64"))


def plan_images(current: pd.DataFrame, previous: pd.DataFrame | None = None, full: bool = False) -> ImagePlan:
    """Compare the listing with the snapshot of what the shop last received (set-wise, vectorised).

    Both frames have ``image_key, reference, position, source_hash`` (``current`` may carry more,
    e.g. ``path``: kept in ``render``). A render lives at a slot (reference, position):

    * a listed photo whose slot held the same ``source_hash`` is unchanged (not rendered, not sent);
    * any other listed photo is rendered (new, changed, moved to another position or article, or no
      hash known); with ``full`` every listed photo is rendered;
    * a slot of the snapshot no longer listed is in ``remove`` (its renders are deleted);
    * two listed photos at the same slot: the first is kept, the others go to ``duplicates``.
    """
    cur = _normalise(current, "current")
    prev = _normalise(previous, "previous").drop_duplicates(SLOT, keep="last")
    dup = cur.duplicated(SLOT, keep="first")
    duplicates, cur = cur.loc[dup], cur.loc[~dup]
    if full:
        same = np.zeros(len(cur), dtype=bool)
    else:
        before = prev[[*SLOT, "source_hash"]].rename(columns={"source_hash": "_previous_hash"})
        merged = cur[[*SLOT, "source_hash"]].merge(before, on=SLOT, how="left", validate="one_to_one")
        same = (merged["_previous_hash"].notna() & (merged["source_hash"] == merged["_previous_hash"])).to_numpy()
    listed = pd.MultiIndex.from_frame(cur[SLOT])
    gone = ~pd.MultiIndex.from_frame(prev[SLOT]).isin(listed)
    return ImagePlan(
        render=cur.loc[~same].reset_index(drop=True),
        unchanged=cur.loc[same].reset_index(drop=True),
        remove=prev.loc[gone, ["image_key", *SLOT]].reset_index(drop=True),
        duplicates=duplicates.reset_index(drop=True),
    )


def removal_names(remove: pd.DataFrame, cfg: Mapping[str, Any] | ImageSettings) -> list[str]:
    """File names to delete on the shop for the removed slots (every configured format)."""
    settings = image_settings(cfg)
    return [
        render_name(ref, int(pos), spec.name, settings.ext)
        for ref, pos in zip(remove["reference"].astype(str), remove["position"], strict=True)
        for spec in settings.formats
    ]


def chunk_items(frame: pd.DataFrame, chunk_size: int) -> list[list[dict[str, Any]]]:
    """Cut ``plan.render`` into lists of JSON-ready dicts, one per mapped task (no bytes carried).

    Keeps ``image_key, reference, position, source_hash`` and ``path`` when present.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_items: chunk_size must be >= 1, got {chunk_size!r}")
    keep = [c for c in (*PLAN_COLUMNS, "path") if c in frame.columns]
    records = frame[keep].astype(object).where(frame[keep].notna(), None).to_dict("records")
    return [records[i : i + chunk_size] for i in range(0, len(records), chunk_size)]


def snapshot_after(
    previous: pd.DataFrame | None, plan: ImagePlan, rendered: Iterable[Mapping[str, Any]]
) -> pd.DataFrame:
    """The snapshot once the run's renders and removals reached the shop.

    Unchanged rows stay; rendered photos take their new hash; a planned photo that failed keeps the
    slot's previous row, if any (the shop still has the old render and the next run retries);
    removed slots leave. Columns: ``image_key, reference, position, source_hash`` and, when known,
    ``path, stat_signature`` (for :func:`fingerprint_files`).
    """
    columns = [*PLAN_COLUMNS, "path", "stat_signature"]
    done = pd.DataFrame([{k: r.get(k) for k in columns} for r in rendered], columns=columns)
    done = done.astype({"position": "int64"}) if len(done) else done
    prev = _normalise(previous, "previous").drop_duplicates(SLOT, keep="last")
    planned = pd.MultiIndex.from_frame(plan.render[SLOT])
    succeeded = pd.MultiIndex.from_frame(done[SLOT].astype({"reference": str, "position": "int64"}))
    failed_slots = planned[~planned.isin(succeeded)]
    kept = prev.loc[pd.MultiIndex.from_frame(prev[SLOT]).isin(failed_slots)]
    parts = [p for p in (plan.unchanged, done, kept) if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = pd.concat([p.reindex(columns=columns) for p in parts], ignore_index=True)
    out = out.astype({"reference": str, "position": "int64"})
    return out.sort_values(SLOT, kind="stable").reset_index(drop=True)


__all__ = [
    "BadImage",
    "FormatSpec",
    "ImagePlan",
    "ImageSettings",
    "chunk_items",
    "fingerprint_files",
    "image_settings",
    "iter_render",
    "plan_images",
    "removal_names",
    "render",
    "render_chunk",
    "render_name",
    "render_with",
    "snapshot_after",
    "source_hash",
    "stat_signature",
    "summarize",
]
