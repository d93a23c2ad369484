"""xinyong_gateway: the credit-information gateway service (ingest, storage, command line).

Run it with ``xinyong-gateway serve``; embed it with ``create_app(GatewaySettings(...))``.
"""

from __future__ import annotations

from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.web import create_app

__version__ = "0.1.0"

__all__ = ["GatewaySettings", "__version__", "create_app"]
