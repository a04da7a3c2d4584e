/* The smallest dynamic program: what the benchmark starts. */
#include <stdio.h>

int main(void)
{
    puts("hello");
    return 0;
}
