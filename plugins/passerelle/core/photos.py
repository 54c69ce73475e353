"""Where the shop finds an article's photos: the URLs the catalog files carry.

The renders themselves are made and uploaded by the images step (passerelle.core.images);
this module only names them, so that the product files and the uploaded renders agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from passerelle.config import Settings

#: Render used by the shop as the product photo (the others are derived by the shop or unused).
SHOP_FORMAT = "large"


def render_file_name(reference: str, position: int, format_name: str, ext: str) -> str:
    """The name the images step gives a render (passerelle.core.images.render_name)."""
    from passerelle.core.images import render_name

    return render_name(reference, int(position), format_name, ext)


@dataclass(frozen=True)
class ImageUrls:
    """The export enricher adding ``image_urls`` (comma separated, cover first) to article rows:
    renders in *folder* (a URL), with extension *ext*. A plain object, so that it travels to the
    process formatting a large send's files (passerelle.core.export)."""

    folder: str
    ext: str

    def __call__(self, entity: str, df: pd.DataFrame) -> pd.DataFrame:
        if entity != "article" or "images" not in df:
            return df
        parts = df["images"].fillna("").str.split(",").explode()
        parts = parts[parts != ""]
        positions = parts.str.split(":").str[0].astype(int)
        refs = df.loc[positions.index, "reference"]
        urls = [f"{self.folder}/{render_file_name(r, p, SHOP_FORMAT, self.ext)}" for r, p in zip(refs, positions)]
        joined = pd.Series(urls, index=positions.index, dtype=object).groupby(level=0).agg(",".join)
        out = df.copy()
        out["image_urls"] = joined.reindex(df.index).fillna("")
        return out


def image_url_enricher(settings: Settings) -> Callable[[str, pd.DataFrame], pd.DataFrame]:
    """The catalog's enricher (:class:`ImageUrls`): renders under ``shop.public_base_url``, in
    ``images.format``."""
    base = settings.shop.public_base_url.rstrip("/")
    ext = "webp" if settings.images.format == "webp" else "jpg"
    return ImageUrls(f"{base}/images" if base else "images", ext)
