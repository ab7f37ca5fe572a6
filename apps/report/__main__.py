"""``python -m apps.report``: the same as ``python docs/report/build.py``."""

from apps.report.cli import main

raise SystemExit(main())
