/* Finds libwho.so at run time with dlopen, after the shim restored the
 * environment: the loader keeps the library path it started with. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *ldlp = getenv("LD_LIBRARY_PATH");
    printf("ld_library_path %s\n", ldlp ? ldlp : "(unset)");
    void *lib = dlopen("libwho.so", RTLD_NOW);
    if (!lib) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    const char *(*who)(void) = (const char *(*)(void))dlsym(lib, "who");
    printf("who %s\n", who());
    return 0;
}
