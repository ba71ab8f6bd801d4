"""The stat engine: sums, deviations, extremes, moments and entropy over sliding windows."""
