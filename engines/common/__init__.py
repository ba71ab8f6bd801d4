"""What the engines share: Jubatus's datum converter, weight storage and linear methods.

An engine imports from here, never from another engine (``docs/architecture.md``).
"""
