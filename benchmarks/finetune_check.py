"""How well tf_efficientnet_lite0's ImageNet weights carry over to CIFAR-10 at 64 px (a linear probe,
one short fine-tuning epoch).

The whole job is ``lethe_classification.finetune_check``: ``python benchmarks/finetune_check.py --help``.
"""

import sys

from lethe_classification.finetune_check import main

if __name__ == "__main__":
    sys.exit(main())
