"""Writing to a custom API: the generic writer fits (PATCH with If-Match, POST with Idempotency-Key)."""

from __future__ import annotations

from typing import Any

from talk_assets.sync.conversions import PRICE_CURRENCY
from talk_assets.sync.writer import Row, Writer

CURRENCY = "currency"  # the field our APIs name a product's price currency in (both OpenAPI documents)


class CustomApiWriter(Writer):
    supports_idempotency_key = True

    def update(self, row: Row, fields: list[str]) -> dict[str, Any]:
        """A price goes only to a record priced in the global currency: a product priced in another
        currency (its price reads as no value) keeps it, and the price waits (`HeldBack`, after the row's
        other fields are written), as nothing converts between currencies. The record's currency is read
        just before the write, and only when a price is written."""
        prices = {pr.field for pr in row.view.props_for("price_ex_vat")
                  if pr.field in fields and CURRENCY in pr.conversion.record_fields}
        if prices:
            current = self.client.get_record(row.view.entity, row.record_id) or {}
            currency = str(current.get(CURRENCY) or PRICE_CURRENCY).strip().upper()
            if currency != PRICE_CURRENCY:
                self.write_then_hold(
                    fields, prices, f"the {row.view.entity} record is priced in {currency}, the global price in "
                                    f"{PRICE_CURRENCY}, and no exchange rate is known: the price is not written.",
                    lambda rest: Writer.update(self, row, rest))
        return super().update(row, fields)
