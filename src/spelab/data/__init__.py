"""LightningDataModules for the LRA and music tasks (batch contract: docs/layout.md)."""
