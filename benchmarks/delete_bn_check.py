"""Where DELETE's retained-accuracy loss comes from on a small model: weights or BatchNorm statistics.

The whole job is ``lethe_classification.delete_bn_check``: ``python benchmarks/delete_bn_check.py --help``.
"""

import sys

from lethe_classification.delete_bn_check import main

if __name__ == "__main__":
    sys.exit(main())
