"""``python -m geartrain``: the geartrain command."""

from geartrain.cli.main import main

raise SystemExit(main())
