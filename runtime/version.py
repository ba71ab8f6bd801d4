"""The runtime's version (one place; ``--version`` and ``get_status`` show it)."""

__version__ = "0.1.0"

#: The Jubatus release whose wire, flags and files Jubako follows: ``--version`` says it
#: first and ``get_status`` gives it as ``VERSION``, as Jubatus does, for tools that read
#: it (Jubako's own version is ``jubako_version`` there).
JUBATUS_VERSION = "1.1.1"
