"""The weight engine: Jubatus's datum converter as a service (features and their weights)."""
