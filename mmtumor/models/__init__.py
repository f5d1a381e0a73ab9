"""Fusion networks. Import ``mmtumor.models.registry`` to build one by name (this imports torch)."""
