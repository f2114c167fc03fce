"""Stand-ins for the outside world: the payment provider and the restaurants' point of sale."""
