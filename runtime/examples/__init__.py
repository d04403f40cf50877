"""Runnable examples of programs built on twinray's public API (`python -m runtime.examples.NAME`)."""
