#!/usr/bin/env python
"""Formal verification of the batching system: ``python verify.py --help`` (the same as
``batchenv-verify``).

The command line is :func:`apps.verify.main`.
"""

import sys

from apps.verify import main

if __name__ == "__main__":
    sys.exit(main())
