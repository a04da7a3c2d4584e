/* Per-binary entries (shim/FORMAT.md): the file-name key and the parser.
 * Pure functions over memory: the shim, the test harness and the fuzzer
 * build the same source. */
#ifndef NIXLD_ENTRY_H
#define NIXLD_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define NIXLD_ENTRY_MAX 65536 /* bytes in a whole entry file */
#define NIXLD_ENTRY_DIRS 64   /* `dir` lines */
#define NIXLD_DIR_MAX 4095    /* bytes in one `dir` value */
#define NIXLD_BUILD_ID_MAX 64 /* bytes in a build-id (hex digits: twice that) */

struct nixld_span {
    const char *ptr; /* into the parsed buffer, not NUL-terminated */
    size_t len;
};

struct nixld_entry {
    struct nixld_span path;
    struct nixld_span build_id; /* hex digits; empty in a path entry */
    int has_identity; /* dev, ino, size and mtime were all present */
    int has_size;
    uint64_t dev, ino, size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    size_t ndirs;
    struct nixld_span dirs[NIXLD_ENTRY_DIRS];
};

/* 64-bit FNV-1a of `len` bytes. */
uint64_t nixld_fnv1a64(const char *bytes, size_t len);

/* 16 lowercase hex digits of `h` into out[0..15] (no NUL). */
void nixld_hex16(uint64_t h, char out[16]);

/* Parse a whole entry file. Returns 1 and fills `out` if the file follows
 * every rule of FORMAT.md, else 0 (an entry is never half-applied). */
int nixld_parse_entry(const char *buf, size_t len, struct nixld_entry *out);

#endif
