"""The Custom CRM client: the generic custom-API client with typed methods per entity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from talk_assets.systems.customapi.client import CustomApiClient
from talk_assets.systems.customcrm.models import Contact, Customer, Order, Product, Quote, User
from talk_assets.systems.customcrm.spec import SPEC


class Client(CustomApiClient):
    """`Client.from_env()` reads TALK_CUSTOMCRM_URL and TALK_CUSTOMCRM_API_KEY."""

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

    def iter_contacts(self, since: datetime | None = None) -> Iterator[Contact]:
        return cast(Iterator[Contact], self.iter_models("contacts", since))

    def get_contact(self, contact_id: int) -> tuple[Contact, str | None]:
        return cast(tuple[Contact, str | None], self.get_model("contacts", contact_id))

    def create_contact(self, data: Contact | dict[str, Any], idempotency_key: str | None = None) -> Contact:
        return cast(Contact, self.create_model("contacts", data, idempotency_key))

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

    def iter_quotes(self, since: datetime | None = None) -> Iterator[Quote]:
        return cast(Iterator[Quote], self.iter_models("quotes", since))

    def get_quote(self, quote_id: int) -> tuple[Quote, str | None]:
        return cast(tuple[Quote, str | None], self.get_model("quotes", quote_id))

    def iter_users(self, since: datetime | None = None) -> Iterator[User]:
        return cast(Iterator[User], self.iter_models("users", since))

    def get_user(self, user_id: int) -> tuple[User, str | None]:
        return cast(tuple[User, str | None], self.get_model("users", user_id))


def from_env() -> Client:
    return cast(Client, Client.from_env())
