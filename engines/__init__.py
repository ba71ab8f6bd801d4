"""Engines with Jubatus's interfaces, built on the Jubako runtime."""
