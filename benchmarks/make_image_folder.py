"""Write a seeded sample of a registered dataset as an image folder (``<out>/{train,test}/<class>/*.png``).

The whole job is ``lethe_vision.image_folder``: ``python benchmarks/make_image_folder.py --help``.
"""

import sys

from lethe_vision.image_folder import main

if __name__ == "__main__":
    sys.exit(main())
