"""The Custom Webshop client: the generic custom-API client with typed methods per entity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from talk_assets.systems.customapi.client import CustomApiClient
from talk_assets.systems.customwebshop.models import Customer, Order, Product
from talk_assets.systems.customwebshop.spec import SPEC


class Client(CustomApiClient):
    """`Client.from_env()` reads TALK_CUSTOMWEBSHOP_URL and TALK_CUSTOMWEBSHOP_API_KEY."""

    spec = SPEC
    system = SPEC.key

    def iter_customers(self, since: datetime | None = None) -> Iterator[Customer]:
        return cast(Iterator[Customer], self.iter_models("customers", since))

    def get_customer(self, customer_id: int) -> tuple[Customer, str | None]:
        return cast(tuple[Customer, str | None], self.get_model("customers", customer_id))

    def create_customer(self, data: Customer | dict[str, Any], idempotency_key: str | None = None) -> Customer:
        return cast(Customer, self.create_model("customers", data, idempotency_key))

    def update_customer(self, customer_id: int, changes: dict[str, Any],
                        expected_version: str | int | None = None) -> Customer:
        return cast(Customer, self.update_model("customers", customer_id, changes, expected_version))

    def iter_products(self, since: datetime | None = None) -> Iterator[Product]:
        return cast(Iterator[Product], self.iter_models("products", since))

    def get_product(self, product_id: int) -> tuple[Product, str | None]:
        return cast(tuple[Product, str | None], self.get_model("products", product_id))

    def create_product(self, data: Product | dict[str, Any], idempotency_key: str | None = None) -> Product:
        return cast(Product, self.create_model("products", data, idempotency_key))

    def update_product(self, product_id: int, changes: dict[str, Any],
                       expected_version: str | int | None = None) -> Product:
        return cast(Product, self.update_model("products", product_id, changes, expected_version))

    def iter_orders(self, since: datetime | None = None) -> Iterator[Order]:
        return cast(Iterator[Order], self.iter_models("orders", since))

    def get_order(self, order_id: int) -> tuple[Order, str | None]:
        return cast(tuple[Order, str | None], self.get_model("orders", order_id))

    def create_order(self, data: Order | dict[str, Any], idempotency_key: str | None = None) -> Order:
        return cast(Order, self.create_model("orders", data, idempotency_key))

    def update_order(self, order_id: int, changes: dict[str, Any],
                     expected_version: str | int | None = None) -> Order:
        return cast(Order, self.update_model("orders", order_id, changes, expected_version))


def from_env() -> Client:
    return cast(Client, Client.from_env())
