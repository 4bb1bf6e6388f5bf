"""Choose an unlearning method's settings for a face benchmark on its validation split, never on test data.

The whole job is ``lethe_face.tuning``: ``python benchmarks/tune_face_delete.py --help``.
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lethe_face.tuning import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
