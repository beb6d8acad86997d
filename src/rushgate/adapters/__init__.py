"""Implementations of the service ports: SQL storage, security, coordination."""
