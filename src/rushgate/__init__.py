"""rushgate: registration rushes that stay correct, fair and fast."""

__version__ = "0.1.0"
