"""Tests of the commands (nixld/cmd/), run as a user runs them."""
