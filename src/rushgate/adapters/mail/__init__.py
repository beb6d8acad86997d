"""Mailers: SMTP in production, the console in the embedded default."""
