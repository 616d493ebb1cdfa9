"""Questions asked of the whole history: verify, lineage, timeline and the maturity report."""
