"""The anomaly engine: Jubatus's lof and light_lof over the recommender and nearest-neighbour
methods."""
