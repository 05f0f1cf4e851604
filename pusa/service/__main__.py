"""``python -m pusa.service``: run the studio and API (same as ``pusa serve``)."""

import sys

from pusa.service.cli import main

sys.exit(main())
