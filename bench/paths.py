"""Where the benchmark lives, and the import path it needs: the checkout's
agent package and bench/'s own modules."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
