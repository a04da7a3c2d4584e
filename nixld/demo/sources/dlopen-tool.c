#include <dlfcn.h>
#include <stdio.h>
#define NOTE_JSON "[{\"feature\":\"compression\",\"description\":\"gzip support\"," \
    "\"priority\":\"recommended\",\"soname\":[\"libz.so.1\"]}]"
/* The ELF dlopen metadata note (systemd's spec): owner FDO, type 0x407c0c0a. */
__attribute__((used, section(".note.dlopen"), aligned(4)))
static const struct { unsigned n_namesz, n_descsz, n_type; char name[4];
    char desc[(sizeof(NOTE_JSON) + 3) & ~3]; } note = {4, sizeof(NOTE_JSON), 0x407c0c0a,
    "FDO", NOTE_JSON};
int main(void) {
    void *z = dlopen("libz.so.1", RTLD_NOW);
    if (!z) { fprintf(stderr, "dlopen-tool: %s\n", dlerror()); return 127; }
    const char *(*version)(void) = (const char *(*)(void))dlsym(z, "zlibVersion");
    printf("dlopen-tool: ok zlib %s\n", version ? version() : "?");
    return 0;
}
