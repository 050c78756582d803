"""londi: learning when to call a large language model (switching controls and online cascades)."""

__version__ = "0.1.0"
