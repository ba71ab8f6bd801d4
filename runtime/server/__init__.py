"""The server framework: the service base class, the built-in methods, the model file, the main."""
