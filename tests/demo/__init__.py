"""Unit tests of the demo world's builder (nixld/demo/)."""
