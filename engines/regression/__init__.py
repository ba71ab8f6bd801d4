"""The regression engine: Jubatus's linear, nearest-neighbour and inverted-index regressors."""
