"""``python -m cleanvision.bench ...`` is ``cleanvision eval ...``."""
import sys

from ..cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
