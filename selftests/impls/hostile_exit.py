"""A module that ends the process that imports it: loading it as --ls-impl must be one
usage-error line (its own worker process died), never the end of the suite's process."""

import sys

sys.exit(0)

Loss = None
