"""The operator's commands: ``jubako`` (a local cluster, status tables) and ``jubaconfig``."""
