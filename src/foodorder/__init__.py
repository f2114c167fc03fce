"""foodorder: a food-ordering middleware on the Restate durable-execution engine."""
