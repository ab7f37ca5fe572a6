#!/usr/bin/env python
"""Train a reinforcement-learning scheduler: ``python train.py --help`` (the same as ``batchenv-train``).

The command line is :func:`apps.train.main`.
"""

import sys

from apps.train import main

if __name__ == "__main__":
    sys.exit(main())
