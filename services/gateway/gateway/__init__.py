"""Gateway: the single entry. Routes, authenticates, rate-limits and aggregates for the storefront."""
