"""Use cases. Each module is one capability; they talk to the world only through ``ports``."""
