"""Delivery: the delivery manager, the per-region driver matcher and the drivers' digital twins."""
