"""Redis coordination: the waiting room, cluster lock, room bus and seat hints of a
multi-node deployment."""
