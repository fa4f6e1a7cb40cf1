"""Numbers and the report for trained models, from their model directories (and, for simulated
data, the simulator's truth)."""
