"""Trading: the agent loop that signs orders, settlements and readings, and the view of one interval."""
