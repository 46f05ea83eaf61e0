"""Catalog data shipped with advisor (JSONL records; see README.md here for the schema and provenance)."""
