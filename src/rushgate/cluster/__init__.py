"""The local multi-node stack: PostgreSQL primary + replica, Redis, nginx, app nodes."""
