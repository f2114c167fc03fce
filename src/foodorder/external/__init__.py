"""Stand-ins for the outside world: the payment provider, the restaurants' point of sale, a Kafka broker."""
