"""The nearest_neighbor engine: Jubatus's lsh, minhash and euclid_lsh row search."""
