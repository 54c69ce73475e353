"""Former home of the catalog dialects, kept as an alias while other branches still import it.

Everything moved to :mod:`passerelle.core.dialects` (one module per shop). Import from there;
this module goes once nothing imports it.
"""

from __future__ import annotations

from passerelle.core.dialects import dialect  # noqa: F401
from passerelle.core.dialects.base import (  # noqa: F401
    FORMULA_START, Dialect, Rejects, _fmt, _num, neutralise_formulas, sanitise_html, slug, valid_ean13,
)
from passerelle.core.dialects.generic import GenericDialect  # noqa: F401
from passerelle.core.dialects.prestashop import (  # noqa: F401
    PrestaShopDialect, attribute_columns, prestashop_fields, prestashop_frame,
)
