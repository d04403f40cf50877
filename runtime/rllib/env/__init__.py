"""Environments: creating them by name and the env-runner actors that sample them."""
