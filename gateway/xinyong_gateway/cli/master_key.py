"""``xinyong-gateway master-key``: print a new random master key for ``XINYONG_MASTER_KEY``."""

from __future__ import annotations

import argparse
from typing import Any

from xinyong_gateway.cli._common import Output, add_command
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    parser = add_command(
        commands,
        "master-key",
        "print a new random master key for XINYONG_MASTER_KEY",
        "xinyong-gateway master-key      # then: export XINYONG_MASTER_KEY=<the printed key>",
    )
    parser.set_defaults(handler=_master_key)


def _master_key(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    key = MasterKey.generate_text()
    out.emit({"master_key": key}, f"{key}\n  export XINYONG_MASTER_KEY=... and keep a copy safe.")
    return 0
