/* libFuzzer target for the entry parser (clang -fsanitize=fuzzer,address):
 * any input must parse or be refused without touching memory outside it, and
 * whatever parses must keep the FORMAT.md invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct nixld_entry e;
    if (nixld_parse_entry(buf, size, &e)) {
        if (size > NIXLD_ENTRY_MAX || e.path.len == 0 || e.ndirs > NIXLD_ENTRY_DIRS)
            abort();
        /* A build-id entry: hex digits in the buffer, a size, no dev/ino/mtime. */
        if (e.build_id.len && (e.has_identity || !e.has_size || e.build_id.len % 2 ||
                               e.build_id.len > 2 * NIXLD_BUILD_ID_MAX ||
                               e.build_id.ptr < buf || e.build_id.ptr + e.build_id.len > buf + size))
            abort();
        for (size_t i = 0; i < e.build_id.len; i++)
            if (!memchr("0123456789abcdef", e.build_id.ptr[i], 16))
                abort();
        for (size_t i = 0; i < e.ndirs; i++) {
            const struct nixld_span d = e.dirs[i];
            if (d.len == 0 || d.len > NIXLD_DIR_MAX || d.ptr[0] != '/' ||
                memchr(d.ptr, ':', d.len) || d.ptr < buf || d.ptr + d.len > buf + size)
                abort();
        }
    }
    free(buf);
    return 0;
}
