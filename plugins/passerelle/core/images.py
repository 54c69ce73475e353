"""Photo renderer: the back office's photos turned into the shop's formats.

Pure functions over bytes and files; no Airflow import, so they test in milliseconds and a DAG
maps them over chunks (dynamic task mapping) without carrying state. Three modules, in the
order of a run:

- :mod:`passerelle.core.image_plan`: the sources' fingerprints, the plan against the snapshot of
  what the shop last received (what to render, what is unchanged, which renders to remove), the
  chunks, the next snapshot;
- this module: the ``images`` settings (:func:`image_settings`), the renders' names
  (:func:`render_name`), one photo rendered to every format (:func:`render`) and one chunk
  (:func:`render_chunk`: one photo at a time, each file handed to a ``sink``, the uploader; bad
  sources reported with their article reference instead of failing), :func:`summarize`;
- :mod:`passerelle.core.image_pixels`: the image processing itself (one decode per photo, JPEG
  draft mode at the largest target size, EXIF orientation, every colour mode to sRGB, Lanczos
  resizes from the smallest adequate intermediate, alpha on the format's background, encoded
  without any metadata).

A source's ``source_hash`` is :func:`source_hash` of its bytes, the same value as SQL's
``encode(sha256(data), 'hex')``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from passerelle.core.image_pixels import BadImage, FormatSpec, derive, encode, open_source

log = logging.getLogger(__name__)

#: Largest source accepted, in pixels (width x height as declared by the file). Bigger is treated
#: as a decompression bomb. A 80 Mpx source already needs ~240 MB to decode when it is not a JPEG.
DEFAULT_MAX_PIXELS = 80_000_000
#: Render modes of a format: fit (within the box, aspect kept), pad (fit, then centred on a
#: canvas of exactly the box in the background colour), crop (fill the box, centre cropped).
MODES = ("fit", "pad", "crop")
#: Output encodings and their file extension.
EXTENSIONS = {"jpeg": "jpg", "webp": "webp"}

_FORMAT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_MAX = 80


# --------------------------------------------------------------------------- settings


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
        formats=tuple(
            FormatSpec(name, f.width, f.height, f.mode, f.rgb, f.upscale) for name, f in section.formats.items()
        ),
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
        with open_source(data, max_pixels) as im:
            for spec, out in derive(im, specs):
                results[spec.name] = encode(out, image_format, quality, progressive=progressive, optimize=optimize)
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
                head["image_key"],
                head["reference"],
                head["position"],
                exc.reason,
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


__all__ = [
    "BadImage",
    "FormatSpec",
    "ImageSettings",
    "image_settings",
    "iter_render",
    "render",
    "render_chunk",
    "render_name",
    "render_with",
    "source_hash",
    "stat_signature",
    "summarize",
]
