/* Per-binary entries: see entry.h and FORMAT.md. No libc: built into the
 * freestanding shim as well as into the test harness and the fuzzer. */
#include "entry.h"

uint64_t nixld_fnv1a64(const char *bytes, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)bytes[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void nixld_hex16(uint64_t h, char out[16])
{
    for (int i = 15; i >= 0; i--) {
        out[i] = "0123456789abcdef"[h & 0xf];
        h >>= 4;
    }
}

static int span_is(struct nixld_span s, const char *lit)
{
    size_t i = 0;
    for (; i < s.len; i++)
        if (lit[i] != s.ptr[i] || lit[i] == 0)
            return 0;
    return lit[i] == 0;
}

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Decimal digits only, at least one, no overflow. */
static int parse_u64(struct nixld_span s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.ptr[i] - '0';
        /* v * 10 + d <= UINT64_MAX, without a 64-bit division (none on i686). */
        if (d > 9 || v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* `seconds nanoseconds`; seconds may be negative (before 1970). */
static int parse_mtime(struct nixld_span s, int64_t *sec, uint32_t *nsec)
{
    size_t sp = 0;
    while (sp < s.len && s.ptr[sp] != ' ')
        sp++;
    if (sp == s.len)
        return 0;
    int neg = s.len > 0 && s.ptr[0] == '-';
    struct nixld_span secs = {s.ptr + neg, sp - neg};
    struct nixld_span nanos = {s.ptr + sp + 1, s.len - sp - 1};
    uint64_t a, b;
    if (!parse_u64(secs, &a) || !parse_u64(nanos, &b))
        return 0;
    if (a > (uint64_t)INT64_MAX || b > 999999999)
        return 0;
    *sec = neg ? -(int64_t)a : (int64_t)a;
    *nsec = (uint32_t)b;
    return 1;
}

static int valid_dir(struct nixld_span v)
{
    if (v.len < 1 || v.len > NIXLD_DIR_MAX || v.ptr[0] != '/')
        return 0;
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] == ':')
            return 0;
    return 1;
}

/* 2 to 2 * NIXLD_BUILD_ID_MAX lowercase hex digits, an even number. */
static int valid_build_id(struct nixld_span v)
{
    if (v.len < 2 || v.len > 2 * NIXLD_BUILD_ID_MAX || v.len % 2)
        return 0;
    for (size_t i = 0; i < v.len; i++)
        if (!((v.ptr[i] >= '0' && v.ptr[i] <= '9') || (v.ptr[i] >= 'a' && v.ptr[i] <= 'f')))
            return 0;
    return 1;
}

enum { SEEN_PATH = 1, SEEN_DEV = 2, SEEN_INO = 4, SEEN_SIZE = 8, SEEN_MTIME = 16,
       SEEN_BUILD_ID = 32 };
#define SEEN_IDENTITY (SEEN_DEV | SEEN_INO | SEEN_SIZE | SEEN_MTIME)

/* One `key value` line; returns 0 if it makes the entry invalid. */
static int parse_line(struct nixld_span key, struct nixld_span val, unsigned *seen,
                      struct nixld_entry *e)
{
    unsigned bit = 0;
    int ok = 1;
    if (span_is(key, "path")) {
        bit = SEEN_PATH;
        e->path = val;
        ok = val.len > 0;
    } else if (span_is(key, "dev")) {
        bit = SEEN_DEV;
        ok = parse_u64(val, &e->dev);
    } else if (span_is(key, "ino")) {
        bit = SEEN_INO;
        ok = parse_u64(val, &e->ino);
    } else if (span_is(key, "size")) {
        bit = SEEN_SIZE;
        ok = parse_u64(val, &e->size);
    } else if (span_is(key, "mtime")) {
        bit = SEEN_MTIME;
        ok = parse_mtime(val, &e->mtime_sec, &e->mtime_nsec);
    } else if (span_is(key, "build_id")) {
        bit = SEEN_BUILD_ID;
        e->build_id = val;
        ok = valid_build_id(val);
    } else if (span_is(key, "dir")) {
        if (e->ndirs == NIXLD_ENTRY_DIRS || !valid_dir(val))
            return 0;
        e->dirs[e->ndirs++] = val;
        return 1;
    } else {
        return 1; /* the Python side's own keys */
    }
    if (!ok || (*seen & bit))
        return 0;
    *seen |= bit;
    return 1;
}

int nixld_parse_entry(const char *buf, size_t len, struct nixld_entry *e)
{
    static const char head[] = "nixld-entry 1\n";
    const size_t head_len = sizeof head - 1;
    unsigned seen = 0;

    e->path.ptr = 0;
    e->path.len = 0;
    e->build_id.ptr = 0;
    e->build_id.len = 0;
    e->has_identity = 0;
    e->has_size = 0;
    e->ndirs = 0;
    if (len > NIXLD_ENTRY_MAX || len < head_len)
        return 0;
    for (size_t i = 0; i < head_len; i++)
        if (buf[i] != head[i])
            return 0;

    for (size_t pos = head_len;;) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') {
            if (buf[end] == 0)
                return 0;
            end++;
        }
        if (end == len)
            return 0; /* truncated: no `end` line */
        struct nixld_span line = {buf + pos, end - pos};
        pos = end + 1;
        if (span_is(line, "end")) {
            if (pos != len)
                return 0;
            break;
        }
        if (line.len > 0 && line.ptr[line.len - 1] == '\r')
            return 0;
        size_t k = 0;
        while (k < line.len && is_key_char(line.ptr[k]))
            k++;
        if (k == 0 || k == line.len || line.ptr[k] != ' ')
            return 0; /* blank line, bad key or no single space */
        struct nixld_span key = {line.ptr, k};
        struct nixld_span val = {line.ptr + k + 1, line.len - k - 1};
        if (!parse_line(key, val, &seen, e))
            return 0;
    }

    if (!(seen & SEEN_PATH))
        return 0;
    if (seen & SEEN_BUILD_ID) {
        /* A build-id entry: its size, and no dev/ino/mtime (a copy elsewhere
         * has others). */
        if ((seen & SEEN_IDENTITY) != SEEN_SIZE)
            return 0;
        e->has_size = 1;
        return 1;
    }
    if ((seen & SEEN_IDENTITY) != 0 && (seen & SEEN_IDENTITY) != SEEN_IDENTITY)
        return 0;
    e->has_identity = (seen & SEEN_IDENTITY) == SEEN_IDENTITY;
    e->has_size = e->has_identity;
    return 1;
}
