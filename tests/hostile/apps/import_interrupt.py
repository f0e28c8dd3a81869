"""Hostile app: KeyboardInterrupt raised while being imported."""
raise KeyboardInterrupt
