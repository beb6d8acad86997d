"""The ports the use cases need, one module per feature. Adapters implement them;
services never import adapters."""
