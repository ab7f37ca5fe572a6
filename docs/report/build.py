#!/usr/bin/env python3
"""Build the report and the slides: ``python docs/report/build.py --help``.

The builder is the package ``apps/report/`` (``python -m apps.report`` does the same); this file
keeps the command that the documents and the tests cite.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from apps.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
