#include <stdio.h>
int bar(void);
int main(void) { printf("bar-tool: ok %d\n", bar()); return 0; }
