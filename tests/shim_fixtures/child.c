/* Starts a child with system(): it must see the program's own environment,
 * never the library path the shim handed the loader. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *ldlp = getenv("LD_LIBRARY_PATH");
    printf("parent %s\n", ldlp ? ldlp : "(unset)");
    fflush(stdout);
    return system("/usr/bin/env") == 0 ? 0 : 1;
}
