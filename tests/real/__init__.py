"""Tests of the real world: arena, serialization, transport, workers and the public API."""
