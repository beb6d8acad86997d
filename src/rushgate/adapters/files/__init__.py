"""Blob storage for uploaded documents: a local directory (S3-compatible stores later)."""
