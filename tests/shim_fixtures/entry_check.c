/* Test harness around the shim's own entry code (shim/entry.c):
 *   entry_check hash STRING   -> the 16 hex digits of FNV-1a64(STRING)
 *   entry_check parse FILE    -> `invalid`, or `valid` and the parsed fields */
#include <stdio.h>
#include <string.h>

#include "entry.h"

static char buf[NIXLD_ENTRY_MAX + 2];

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hash") == 0) {
        char hex[17] = {0};
        nixld_hex16(nixld_fnv1a64(argv[2], strlen(argv[2])), hex);
        printf("%s\n", hex);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "parse") != 0)
        return 2;
    FILE *f = fopen(argv[2], "rb");
    if (!f)
        return 2;
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct nixld_entry e;
    if (!nixld_parse_entry(buf, len, &e)) {
        printf("invalid\n");
        return 1;
    }
    printf("valid\npath %.*s\n", (int)e.path.len, e.path.ptr);
    if (e.has_identity)
        printf("identity %llu %llu %llu %lld %u\n", (unsigned long long)e.dev,
               (unsigned long long)e.ino, (unsigned long long)e.size, (long long)e.mtime_sec,
               e.mtime_nsec);
    if (e.build_id.len)
        printf("build_id %.*s size %llu\n", (int)e.build_id.len, e.build_id.ptr,
               (unsigned long long)e.size);
    for (size_t i = 0; i < e.ndirs; i++)
        printf("dir %.*s\n", (int)e.dirs[i].len, e.dirs[i].ptr);
    return 0;
}
