int bar(void) { return 7; }
