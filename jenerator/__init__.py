"""jenerator: MessagePack-IDL (Jubatus dialect) in, typed Python services and clients out."""

__version__ = "0.1.0"
