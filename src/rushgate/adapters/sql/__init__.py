"""Relational storage: PostgreSQL in production, SQLite as the embedded default."""
