"""Webhooks: a receiver that verifies and stores notifications, and the inbox the sensors read.

`receiver.py` serves one endpoint per system (Starlette on uvicorn), `inbox.py` keeps what arrived
(SQLite, not the DuckDB state), `sender.py` is what the sandboxes use to notify like the real
services, `subscribe.py` creates and keeps the subscriptions, `own_writes.py` is the push's record
of its own writes (their notifications start no run). Each system's own rules (signature,
headers, topics, subscription API) live in `talk_assets/systems/<system>/webhooks.py`.
"""
