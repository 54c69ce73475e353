"""Benchmark of the photo renderer against ImageMagick (issue 4).

    .venv/bin/python bench/images.py                 # 2,000 photos of 3000x2000 (the issue's run)
    .venv/bin/python bench/images.py --photos 50     # a quick one

What it does, on the same source files and the same number of processes:

1. generates the source photos once, deterministically, into ``bench/out/sources-v1-3000x2000/``
   (git-ignored; photo-like JPEGs: gradients, shapes, grain; one in ten carries EXIF orientation 6);
2. renders them with ``passerelle.core.images.render_chunk`` to every format of the project's
   configuration (``include/config/passerelle.yaml``: thumbnail 250x250 pad, large 1200x1200 fit,
   JPEG q85), in a process pool of ``os.cpu_count()`` workers, writing the files to disk;
3. renders them with ImageMagick, one ``convert`` per photo (decoded once, both formats written,
   thumbnail resized from the large like ours), ``os.cpu_count()`` at a time, one thread each
   (``MAGICK_THREAD_LIMIT=1``: one process per core, as a user running them in parallel would);
   Steps 2 and 3 alternate over ``--rounds`` slices of the photos (ours first, then ImageMagick
   first, ...), so that both sides see the same load on a shared machine; their times are summed;
4. reruns the incremental check with nothing changed: ``fingerprint_files`` (one ``stat`` per file,
   the previous snapshot's hashes reused) and ``plan_images``; it must plan no render.

The last line of output is one JSON object: ``photos, seconds, imagemagick_seconds, speedup``
(imagemagick_seconds / seconds), ``rerun_seconds`` and more. Targets: speedup >= 5 (issue 15), rerun at most
1 s per 10,000 photos. ImageMagick (Debian's ``imagemagick``) is installed with apt-get when missing
and the script runs as root; otherwise it stops with a message saying what to install.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from passerelle.config import load_settings
from passerelle.core.image_plan import fingerprint_files, plan_images, snapshot_after
from passerelle.core.images import (
    FormatSpec,
    ImageSettings,
    image_settings,
    render_chunk,
    summarize,
)

WIDTH, HEIGHT = 3000, 2000
SOURCES_VERSION = "v1"  # bump when make_photo changes: the cache folder changes with it


# --------------------------------------------------------------------------- sources


def make_photo(index: int) -> bytes:
    """One deterministic photo-like JPEG (same index, same bytes, for a given Pillow/NumPy)."""
    import io

    rng = np.random.default_rng(index)
    x = np.linspace(0.0, 1.0, WIDTH, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None]
    start, across, down = rng.uniform(0, 255, (3, 3)).astype(np.float32)
    pixels = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    grain = rng.integers(-10, 11, (256, 256, 3), dtype=np.int16)
    tiles = np.tile(grain, (HEIGHT // 256 + 1, WIDTH // 256 + 1, 1))[:HEIGHT, :WIDTH]
    for c in range(3):
        plane = start[c] + (across[c] - start[c]) * x * 0.7 + (down[c] - start[c]) * y * 0.3
        pixels[..., c] = np.clip(plane + tiles[..., c], 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        w, h = int(rng.integers(40, 900)), int(rng.integers(40, 700))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour, outline=(0, 0, 0), width=3)
    params: dict[str, Any] = {"quality": 90}
    if index % 10 == 0:
        exif = Image.Exif()
        exif[0x0112] = 6
        params["exif"] = exif.tobytes()
    buf = io.BytesIO()
    image.save(buf, "JPEG", **params)
    return buf.getvalue()


def _write_photo(folder: Path, index: int) -> None:
    target = folder / f"photo-{index:05d}.jpg"
    if target.exists():
        return
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(make_photo(index))
    tmp.replace(target)  # never leave a half-written file in the cache


def ensure_sources(out: Path, count: int, workers: int) -> list[Path]:
    """The ``count`` first cached photos, generating the missing ones."""
    folder = out / f"sources-{SOURCES_VERSION}-{WIDTH}x{HEIGHT}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (folder / f"photo-{i:05d}.jpg").exists()]
    if missing:
        print(f"generating {len(missing)} source photos into {folder} ...", flush=True)
        started = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(functools.partial(_write_photo, folder), missing, chunksize=8))
        print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return [folder / f"photo-{i:05d}.jpg" for i in range(count)]


# --------------------------------------------------------------------------- ours


def _write(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


def _ours_chunk(items: list[dict], settings: ImageSettings, folder: Path) -> tuple[list, list, int]:
    rendered, errors = render_chunk(items, settings, sink=functools.partial(_write, folder))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rendered, errors, peak_kib


def run_ours(listing: pd.DataFrame, settings: ImageSettings, folder: Path, workers: int) -> dict[str, Any]:
    """Plan (first run: everything), render in a process pool, build the snapshot."""
    started = time.perf_counter()
    current = fingerprint_files(listing)
    plan = plan_images(current, None)
    items = plan.render[["image_key", "reference", "position", "path"]].to_dict("records")
    # Enough chunks to keep every worker busy, never more than the configured chunk size.
    size = max(1, min(settings.chunk_size, math.ceil(len(items) / (workers * 4))))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_ours_chunk, chunks, [settings] * len(chunks), [folder] * len(chunks)))
    seconds = time.perf_counter() - started
    rendered = [r for ok, _, _ in results for r in ok]
    totals = summarize((ok, bad) for ok, bad, _ in results)
    totals["_chunks"] = [item for ok, bad, _ in results for item in [(ok, bad)]]
    return {
        "seconds": seconds,
        "plan": plan,
        "rendered": rendered,
        "totals": totals,
        "chunks": len(chunks),
        "worker_peak_rss_mb": max(peak for _, _, peak in results) / 1024,
    }


# --------------------------------------------------------------------------- ImageMagick


def _is_imagemagick(path: str) -> str | None:
    """The version line when ``path`` is a real ImageMagick binary (not a script stand-in)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"#!":
                return None
        done = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stdout or "").splitlines()[:1]
    return first[0] if first and "ImageMagick" in first[0] else None


def _candidates() -> list[str]:
    found = []
    for name in ("magick", "convert-im6.q16", "convert-im6", "convert"):
        for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/bin"]:
            path = os.path.join(folder, name)
            if os.access(path, os.X_OK) and os.path.realpath(path) not in {os.path.realpath(p) for p in found}:
                found.append(path)
    return found


def find_imagemagick() -> tuple[str, str]:
    """(binary, version) of ImageMagick, installing Debian's package when root."""
    for attempt in range(2):
        for path in _candidates():
            version = _is_imagemagick(path)
            if version:
                return path, version
        if attempt:
            break
        if os.geteuid() != 0:
            sys.exit(
                "bench/images.py: ImageMagick not found (no 'magick', and no 'convert' whose -version says "
                "ImageMagick). Install it: sudo apt-get install -y imagemagick, or run this script as root."
            )
        print("ImageMagick missing: apt-get install -y imagemagick ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "imagemagick"]
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    sys.exit("bench/images.py: imagemagick was installed but no ImageMagick binary answers -version")


def _geometry(spec: FormatSpec) -> list[str]:
    box = f"{spec.width}x{spec.height}"
    background = "#{:02X}{:02X}{:02X}".format(*spec.background)
    if spec.mode == "crop":
        return ["-resize", f"{box}^", "-gravity", "center", "-extent", box]
    resize = ["-resize", box if spec.upscale else f"{box}>"]
    if spec.mode == "pad":
        return [*resize, "-background", background, "-gravity", "center", "-extent", box]
    return resize


def imagemagick_command(exe: str, source: Path, folder: Path, settings: ImageSettings, size_hint: bool) -> list[str]:
    """One ``convert`` making every format from one decode, largest first.

    After a ``fit`` the next format is resized from that result (as ours does); after ``pad`` or
    ``crop`` it starts again from the photo (``+clone``).
    """
    ordered = sorted(settings.formats, key=lambda s: s.width * s.height, reverse=True)
    args = [exe]
    if size_hint:  # ImageMagick's counterpart of our JPEG draft mode: decode no smaller than needed
        biggest = ordered[0]
        scale = min(biggest.width / WIDTH, biggest.height / HEIGHT, 1.0)
        args += ["-define", f"jpeg:size={math.ceil(WIDTH * scale)}x{math.ceil(HEIGHT * scale)}"]
    args += [str(source), "-auto-orient", "-strip"]
    for i, spec in enumerate(ordered):
        out = str(folder / f"{source.stem}_{spec.name}.{settings.ext}")
        ops = [*_geometry(spec), "-quality", str(settings.quality)]
        if i == len(ordered) - 1:
            args += [*ops, out]
        elif spec.mode == "fit":
            args += [*ops, "-write", out]
        else:
            args += ["(", "+clone", *ops, "-write", out, "+delete", ")"]
    return args


def run_imagemagick(
    exe: str, sources: list[Path], settings: ImageSettings, folder: Path, workers: int, size_hint: bool
) -> dict[str, Any]:
    env = {**os.environ, "MAGICK_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1"}

    def one(source: Path) -> str | None:
        done = subprocess.run(
            imagemagick_command(exe, source, folder, settings, size_hint), env=env, capture_output=True, text=True
        )
        return None if done.returncode == 0 else f"{source.name}: {done.stderr.strip()[:300]}"

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        failures = [f for f in pool.map(one, sources) if f]
    return {"seconds": time.perf_counter() - started, "failures": failures}


# --------------------------------------------------------------------------- run


def reset(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=2000, help="number of source photos (default 2000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="cache and output folder")
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternating rounds of the two sides over slices of the photos (4)"
    )
    parser.add_argument(
        "--imagemagick-size-hint",
        action="store_true",
        help="give ImageMagick -define jpeg:size (its draft mode); off by default, as most users write it",
    )
    args = parser.parse_args(argv)
    if args.photos < 1 or args.workers < 1:
        parser.error("--photos and --workers must be >= 1")

    settings = image_settings(load_settings())
    exe, version = find_imagemagick()
    sources = ensure_sources(args.out, args.photos, args.workers)
    listing = pd.DataFrame(
        {
            "image_key": range(len(sources)),
            "reference": [f"ART-{i // 2:05d}" for i in range(len(sources))],  # two photos per article
            "position": [i % 2 for i in range(len(sources))],
            "path": [str(p) for p in sources],
        }
    )
    source_mb = sum(p.stat().st_size for p in sources) / 1e6

    # Rounds alternate the two sides (ours first, then ImageMagick first, ...) over slices of the
    # photos, so that both see the same load on a shared machine; the times are summed.
    ours_folder, magick_folder = args.out / "renders-passerelle", args.out / "renders-imagemagick"
    reset(ours_folder)
    reset(magick_folder)
    rounds = max(1, min(args.rounds, args.photos))
    bounds = [len(sources) * r // rounds for r in range(rounds + 1)]
    parts: list[dict[str, Any]] = []
    magick = {"seconds": 0.0, "failures": []}
    for r in range(rounds):
        lo, hi = bounds[r], bounds[r + 1]
        sides = ["ours", "magick"] if r % 2 == 0 else ["magick", "ours"]
        for side in sides:
            if side == "ours":
                parts.append(run_ours(listing.iloc[lo:hi], settings, ours_folder, args.workers))
            else:
                done = run_imagemagick(
                    exe, sources[lo:hi], settings, magick_folder, args.workers, args.imagemagick_size_hint
                )
                magick["seconds"] += done["seconds"]
                magick["failures"] += done["failures"]
    ours = {
        "seconds": sum(p["seconds"] for p in parts),
        "rendered": [r for p in parts for r in p["rendered"]],
        "totals": summarize(chunk for p in parts for chunk in p["totals"]["_chunks"]),
        "chunks": sum(p["chunks"] for p in parts),
        "worker_peak_rss_mb": max(p["worker_peak_rss_mb"] for p in parts),
    }
    print(
        f"passerelle : {args.photos} photos ({source_mb:.0f} MB) in {ours['seconds']:.2f} s "
        f"with {args.workers} processes, {ours['chunks']} chunks in {rounds} rounds, {ours['totals']['files']} files, "
        f"{ours['totals']['failed']} failed, worker peak RSS {ours['worker_peak_rss_mb']:.0f} MB",
        flush=True,
    )
    print(
        f"imagemagick: {args.photos} photos in {magick['seconds']:.2f} s with {args.workers} processes "
        f"({version}), {len(magick['failures'])} failed",
        flush=True,
    )
    for failure in magick["failures"][:5]:
        print(f"  {failure}")

    snapshot = pd.concat([snapshot_after(None, p["plan"], p["rendered"]) for p in parts], ignore_index=True)
    started = time.perf_counter()
    rerun = plan_images(fingerprint_files(listing, snapshot), snapshot, full=False)
    rerun_seconds = time.perf_counter() - started
    # The same check over a 10,000-photo listing (the cached files listed several times), so the
    # target (1 s per 10,000) is measured at that size whatever --photos is.
    big = pd.DataFrame(
        {
            "image_key": range(10_000),
            "reference": [f"ART-{i // 2:05d}" for i in range(10_000)],
            "position": [i % 2 for i in range(10_000)],
            "path": [str(sources[i % len(sources)]) for i in range(10_000)],
        }
    )
    big_snapshot = big.merge(snapshot[["path", "stat_signature", "source_hash"]], on="path")
    started = time.perf_counter()
    big_rerun = plan_images(fingerprint_files(big, big_snapshot), big_snapshot, full=False)
    rerun_10k_seconds = time.perf_counter() - started
    print(
        f"rerun      : nothing changed, {len(rerun.render)} to render, {len(rerun.unchanged)} unchanged "
        f"in {rerun_seconds * 1000:.1f} ms; over a 10,000-photo listing: {len(big_rerun.render)} to render "
        f"in {rerun_10k_seconds * 1000:.1f} ms",
        flush=True,
    )

    result = {
        "photos": args.photos,
        "source_size": f"{WIDTH}x{HEIGHT}",
        "workers": args.workers,
        "formats": {f.name: f"{f.width}x{f.height} {f.mode}" for f in settings.formats},
        "image_format": settings.image_format,
        "quality": settings.quality,
        "seconds": round(ours["seconds"], 3),
        "photos_per_second": round(args.photos / ours["seconds"], 1),
        "failed": ours["totals"]["failed"],
        "output_mb": round(ours["totals"]["bytes"] / 1e6, 1),
        "worker_peak_rss_mb": round(ours["worker_peak_rss_mb"], 1),
        "imagemagick_seconds": round(magick["seconds"], 3),
        "imagemagick_failed": len(magick["failures"]),
        "imagemagick_version": version,
        "imagemagick_size_hint": args.imagemagick_size_hint,
        "rounds": rounds,
        "speedup": round(magick["seconds"] / ours["seconds"], 2),
        "rerun_seconds": round(rerun_seconds, 4),
        "rerun_seconds_per_10k": round(rerun_seconds * 10_000 / args.photos, 3),
        "rerun_to_render": len(rerun.render),
        "rerun_10k_listing_seconds": round(rerun_10k_seconds, 4),
    }
    print(json.dumps(result))
    ok = (
        result["failed"] == 0
        and result["rerun_to_render"] == 0
        and len(big_rerun.render) == 0
        and result["imagemagick_failed"] == 0
        and ours["totals"]["files"] == args.photos * len(settings.formats)
    )
    if not ok:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
