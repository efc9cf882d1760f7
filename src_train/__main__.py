"""``python -m src_train``, the entry point torchrun uses (``torchrun ... -m src_train train ...``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
