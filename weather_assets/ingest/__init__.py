"""Ingest: upstream NWP analyses to the canonical ``raw_inputs`` dataset."""
