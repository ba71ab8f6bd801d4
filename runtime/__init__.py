"""Jubako runtime: what generated servers, proxies and clients import."""

__version__ = "0.1.0"
