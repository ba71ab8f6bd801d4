"""``jubadump``: Jubatus's model-file dumper for Jubako's engines (``jubadump -i FILE``
prints the model a ``save`` wrote as JSON; jubakit's ``JubaDump`` calls it).

:mod:`engines.jubadump.main` is the command, :mod:`engines.jubadump.dumps` reads each
engine's model in Jubatus's layout into jubadump's shapes, and
:mod:`engines.jubadump.printer` prints JSON the way jubadump does. It reads files of
Jubatus and of Jubako alike: both write Jubatus's layout.
"""
