"""Background jobs. Every process runs them, app nodes and ``rushgate worker`` alike; each
job works only while it holds its cluster-wide lock, so one process at a time does the
work and another takes over within seconds when it dies."""
