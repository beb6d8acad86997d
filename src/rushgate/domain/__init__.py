"""Pure rules of registration. Imports nothing from HTTP, storage or coordination."""
