"""Former home of the exchange dialects, kept as an alias while other branches still import it.

Everything moved to :mod:`passerelle.core.dialects` (one module per shop). Import from there;
this module goes once nothing imports it.
"""

from __future__ import annotations

from passerelle.core.dialects import EXCHANGE_ENTITIES, exchange_dialect  # noqa: F401
from passerelle.core.dialects.base import STATUS_RANK, in_time_order, pdf_names  # noqa: F401
from passerelle.core.dialects.generic import GenericExchangeDialect  # noqa: F401
from passerelle.core.dialects.prestashop import (  # noqa: F401
    PRESTASHOP_ORDER_STATES, PS_NO_DATE, PrestaShopExchangeDialect, prestashop_fields, prestashop_frame,
)
