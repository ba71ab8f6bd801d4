"""The runtime's version (one place; ``--version`` and ``get_status`` show it)."""

__version__ = "0.1.0"
