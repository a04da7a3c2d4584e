"""Tests of the C interpreter shim (shim/), built and run for real."""
