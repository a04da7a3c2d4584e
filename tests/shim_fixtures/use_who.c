/* Needs libwho.so (DT_NEEDED) and prints which one the loader found. */
#include <stdio.h>

const char *who(void);

int main(void)
{
    printf("who %s\n", who());
    return 0;
}
