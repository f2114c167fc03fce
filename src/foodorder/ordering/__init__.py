"""Ordering: the order workflow and the order status a customer watches."""
