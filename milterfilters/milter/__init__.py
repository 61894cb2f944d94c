"""The pymilter adapter: the MTA side of milterfilters (thin: the chain decides)."""
