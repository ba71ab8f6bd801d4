"""The proxy: routing rows, forwarding, aggregation, and its main."""
