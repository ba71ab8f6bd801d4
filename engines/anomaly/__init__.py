"""The anomaly engine: Jubatus's lof and light_lof over recommender and nearest-neighbour methods."""
