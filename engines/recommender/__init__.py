"""The recommender engine: Jubatus's inverted-index, hashed and nearest-neighbour recommenders."""
