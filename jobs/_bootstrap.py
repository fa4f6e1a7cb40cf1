"""Make ``import artifactspark`` work for a job started from a source checkout.

Under ``submit.sh`` the package arrives through ``--py-files``; run as ``python jobs/x.py``
from a checkout without installing, the repository root is put on ``sys.path``.
"""

import sys
from pathlib import Path

try:
    import artifactspark  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
