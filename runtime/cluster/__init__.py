"""Where a cluster's servers are: the hash ring, membership (a static list or ZooKeeper)."""
