#!/usr/bin/env python
"""Compare schedulers on scenarios: ``python evaluate.py --help`` (the same as ``batchenv-evaluate``).

The command line is :func:`apps.evaluate.main`; the steps live in the package :mod:`evaluation`.
"""

import sys

from apps.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
