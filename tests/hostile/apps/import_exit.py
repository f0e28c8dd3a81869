"""Hostile app: sys.exit() while being imported."""
import atexit
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
atexit.register(lambda: open(os.path.join(HERE, "atexit.log"), "a").write("import\n"))
sys.exit(7)
