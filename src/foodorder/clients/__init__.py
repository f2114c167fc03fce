"""Clients of the outside world (payment provider, restaurant POS, Restate ingress, Kafka)."""
