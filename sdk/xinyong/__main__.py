"""``python -m xinyong`` is ``xinyong``."""

from xinyong.cli import main

raise SystemExit(main())
