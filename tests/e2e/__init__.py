"""End-to-end tests: the whole job on the demo world, through real shells."""
