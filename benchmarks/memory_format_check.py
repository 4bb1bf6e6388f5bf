"""Training and evaluation throughput on the CPU in NCHW and channels_last memory formats.

The whole job is ``lethe_vision.memory_format_check``: ``python benchmarks/memory_format_check.py --help``.
"""

import sys

from lethe_vision.memory_format_check import main

if __name__ == "__main__":
    sys.exit(main())
