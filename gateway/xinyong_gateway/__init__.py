"""xinyong_gateway: the credit-information gateway service: signed event ingest, the credit engine that projects the
inbox into credit files and lists, the query API for marketplaces, storage on SQLite or PostgreSQL, and the
``xinyong-gateway`` command line. README's "Layout" draws its packages and how they may import each other.

Run it with ``xinyong-gateway serve``; embed it with ``create_app(GatewaySettings(...))``.
"""

from __future__ import annotations

from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.web import create_app

__version__ = "0.1.0"

__all__ = ["GatewaySettings", "__version__", "create_app"]
