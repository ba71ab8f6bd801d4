"""Everything ZooKeeper: Jubatus's znode layout, membership, locks, configs, a private server.

Importing this package imports nothing; its modules import kazoo.
"""
