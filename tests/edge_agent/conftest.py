"""The edge tests' helper modules (`edge_fakes`, `edge_adapters`) are imported by name: pytest's
importlib import mode does not put this directory on sys.path, so it is added here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
