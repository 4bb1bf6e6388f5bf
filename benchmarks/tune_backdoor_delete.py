"""Choose a defence's settings on the defender's own validation images, never on test data.

The whole job is ``lethe_backdoor.tuning``: ``python benchmarks/tune_backdoor_delete.py --help``.
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lethe_backdoor.tuning import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
