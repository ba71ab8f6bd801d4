"""The classifier engine: Jubatus's linear classifiers behind its converter config."""
