"""Test-wide settings: passes verify the graph after every step."""

import os

os.environ.setdefault("GIR_VERIFY", "1")
