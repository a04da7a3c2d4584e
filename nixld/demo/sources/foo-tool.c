#include <stdio.h>
int foo_new(void); int bar(void);
int main(void) { printf("foo-tool: ok %d\n", foo_new() + bar()); return 0; }
