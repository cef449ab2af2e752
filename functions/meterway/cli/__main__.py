"""``python -m meterway.cli``: the ``meterway`` command without its console script."""

from meterway.cli.main import main

raise SystemExit(main())
