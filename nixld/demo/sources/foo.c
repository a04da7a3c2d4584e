int foo_old(void) { return 1; }
int foo_mid(void) { return 2; }
#ifdef FOO_NEW
int foo_new(void) { return 3; }
#endif
