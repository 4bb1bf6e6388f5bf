"""Setup of the lethe_vision tests: one intra-op thread (tiny tensors on a shared 2-core machine).
The generated image-folder dataset (``tiny_root``, ``tiny_spec``) is tests/conftest.py's."""

import torch

torch.set_num_threads(1)
