"""The classifier engine as it was before it moved onto arrays and snapshots (commit
0d9e67e), kept verbatim as the oracle of "today's answers": the equivalence tests check the
engine against it bit for bit."""
