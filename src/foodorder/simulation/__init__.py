"""Simulated driver phones (a stand-in for the real mobile app)."""
