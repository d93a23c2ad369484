"""``python -m xinyong_gateway`` is ``xinyong-gateway``."""

from xinyong_gateway.cli import main

raise SystemExit(main())
