"""Batch scoring of scanned folders: every digit on every page found, read and recorded."""
