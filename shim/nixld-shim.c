/* nixld-shim: a nix-ld compatible ELF interpreter that applies per-binary
 * entries (FORMAT.md).
 *
 * The kernel maps this file as the program's interpreter and enters it with
 * the program's start block (argc, argv, envp, auxv) on the stack. We map the
 * real loader (NIX_LD) into this same process, hand it the library path
 *
 *     E_user : E_sys : $LD_LIBRARY_PATH : NIX_LD_LIBRARY_PATH-or-default
 *
 * through the one LD_LIBRARY_PATH slot of the environment, and jump to it with
 * AT_BASE naming it and AT_ENTRY naming our trampoline, which puts the
 * environment and AT_ENTRY back before the program's own entry point runs.
 *
 * Freestanding: no libc, no relocations (checked by the Makefile). Every
 * failure is one line on stderr and exit 127. */
#include "entry.h"
#include "syscalls.h"

/* The i686 build is the 32-bit interpreter of a 64-bit x86 machine
 * (/lib/ld-linux.so.2 beside the x86_64 shim). There NIX_LD names the 64-bit
 * loader, which cannot load a 32-bit program: it reads only NIX_LD_i686_linux
 * and has the NixOS module's 32-bit defaults, as nixld/search.py models it. */
#if defined(__i386__)
#define NIXLD_FOREIGN_I686 1
#define NIXLD_LOADER_VARS "NIX_LD_" NIXLD_SYSTEM
#define NIXLD_DEFAULT_DIR "/run/current-system/sw/share/nix-ld32/lib"
#else
#define NIXLD_FOREIGN_I686 0
#define NIXLD_LOADER_VARS "NIX_LD_" NIXLD_SYSTEM " or NIX_LD"
#define NIXLD_DEFAULT_DIR "/run/current-system/sw/share/nix-ld/lib"
#endif
#ifndef NIXLD_DEFAULT_LD
#define NIXLD_DEFAULT_LD NIXLD_DEFAULT_DIR "/ld.so"
#endif
#ifndef NIXLD_DEFAULT_LIBRARY_PATH
#define NIXLD_DEFAULT_LIBRARY_PATH NIXLD_DEFAULT_DIR
#endif
#ifndef NIXLD_SYSTEM_ENTRIES_DIR
#define NIXLD_SYSTEM_ENTRIES_DIR "/etc/nixld/entries"
#endif

#define PATH_BUF 4096
#define LD_LIBRARY_PATH_EQ "LD_LIBRARY_PATH="

enum { AT_NULL = 0, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6, AT_BASE = 7, AT_ENTRY = 9,
       AT_SECURE = 23, AT_EXECFN = 31 };

/* The ELF class of this build: the loader and the program are ours. */
#if __SIZEOF_POINTER__ == 8
#define ELF_CLASS_SELF 2
typedef uint64_t Elf_Word;
typedef struct {
    uint32_t p_type, p_flags;
    uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
} Elf_Phdr;
#else
#define ELF_CLASS_SELF 1
typedef uint32_t Elf_Word;
typedef struct {
    uint32_t p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align;
} Elf_Phdr;
#endif

typedef struct {
    unsigned char e_ident[16];
    uint16_t e_type, e_machine;
    uint32_t e_version;
    Elf_Word e_entry, e_phoff, e_shoff;
    uint32_t e_flags;
    uint16_t e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
} Elf_Ehdr;

#define PT_LOAD 1
#define PT_NOTE 4
#define PT_PHDR 6
#define PF_R 4
#define ET_DYN 3
#define NT_GNU_BUILD_ID 3
#define MAX_PHDRS 32
#define HEAD_SIZE (sizeof(Elf_Ehdr) + MAX_PHDRS * sizeof(Elf_Phdr))

/* An environment variable: its slot in envp and its value. */
struct env_var {
    char **slot;
    const char *value;
};

/* A growing "LD_LIBRARY_PATH=..." string. */
struct path {
    char *buf;
    size_t len, cap;
};

/* The executable's identity, from one statx (FORMAT.md). */
struct identity {
    uint64_t dev, ino, size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
};

/* Everything the shim learns, filled once, then read by the steps of main.
 * Small, and on the stack: every page of stack or data touched costs a page
 * fault, and this runs before every foreign program starts. The buffers are
 * in `scratch`, in the one data page that is written anyway. */
struct context {
    uintptr_t *sp; /* the start block: argc, argv..., 0, envp..., 0, auxv */
    long argc;
    char **argv, **envp;
    size_t envc;
    uintptr_t *auxv;
    size_t auxv_words; /* including the AT_NULL pair */
    uintptr_t *at_base, *at_entry; /* value words inside auxv */
    uintptr_t pagesz, phdr, phent, phnum; /* AT_PHDR..: the program's headers */
    int secure;
    const char *execfn; /* AT_EXECFN: the path execve was given */

    struct env_var nix_ld, nix_ld_sys, nix_ld_library_path, nix_ld_library_path_sys;
    struct env_var ld_library_path, xdg_state_home, home;

    const char *exe; /* the executable's canonical path, in scratch.io.names */
    size_t exe_len;
    int exe_fd; /* O_PATH to exe when found by its AT_EXECFN, else -1 */
    int fd_lo, fd_hi; /* our fds to close at the end: one run, lo..hi, or -1 */
    int identity_known; /* 1 ok, -1 statx failed, 0 not asked yet */
    struct identity identity;
    struct path path;

    const char *ld_path;
    int ld_fd;
    Elf_Ehdr ehdr;
    const Elf_Phdr *phdrs; /* in scratch.io.head */
    uintptr_t ld_bias, ld_entry;
};

/* All the shim writes of its own, in one page of .data (not .bss: that
 * would need the kernel to map and clear it). First what the trampoline
 * needs once the loader is done, then the library path when it fits (else
 * it moves to an mmap), then the file names of the entry lookup, whose
 * space is reused for the loader's headers. */
static struct {
    struct {
        uintptr_t entry;
        uintptr_t *auxv_entry;
        char **env_slot;
        char *env_value;
    } trampoline;
    char path_buf[2048];
    union {
        char names[2 * PATH_BUF]; /* the executable's path, then an entry's file name */
        _Alignas(8) char head[HEAD_SIZE];
    } io;
} scratch __attribute__((section(".data"), aligned(4096)));

#define trampoline scratch.trampoline
#define path_buf scratch.path_buf

/* The compiler may emit calls to these even in freestanding code. */
void *memcpy(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    for (; n >= 8; n -= 8, d += 8, s += 8)
        __builtin_memcpy(d, s, 8); /* one unaligned 8-byte move */
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    char *d = dst;
    uint64_t word = 0x0101010101010101ULL * (unsigned char)c;
    for (; n >= 8; n -= 8, d += 8)
        __builtin_memcpy(d, &word, 8);
    while (n--)
        *d++ = (char)c;
    return dst;
}

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int mem_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static char *put(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    return dst + n;
}

static char *put_str(char *dst, const char *s) { return put(dst, s, str_len(s)); }

/* The usual errors in words, any other as "error N". */
static char *put_error(char *p, long err)
{
    switch (err) {
    case -ENOENT: return put_str(p, "No such file or directory");
    case -EACCES: return put_str(p, "Permission denied");
    case -ENOEXEC: return put_str(p, "not an ELF loader for this machine");
    case -ENOMEM: return put_str(p, "Cannot allocate memory");
    default: break;
    }
    char digits[24], *d = digits + sizeof digits;
    unsigned long n = (unsigned long)-err;
    do
        *--d = (char)('0' + n % 10);
    while (n /= 10);
    p = put_str(p, "error ");
    return put(p, d, (size_t)(digits + sizeof digits - d));
}

/* One line on stderr, then exit 127 (the shell hooks recognise it). */
__attribute__((noreturn)) static void die(const char *what, const char *path, long err)
{
    char line[PATH_BUF + 128];
    char *p = put_str(line, "nixld-shim: ");
    p = put_str(p, what);
    p = put_str(p, " ");
    size_t n = str_len(path);
    p = put(p, path, n > PATH_BUF ? PATH_BUF : n);
    p = put_str(p, ": ");
    p = put_error(p, err);
    *p++ = '\n';
    sys_write(2, line, (size_t)(p - line));
    sys_exit(127);
}

/* The value of `s` if it is `name=value`. */
static const char *env_value(const char *s, const char *name)
{
    while (*name)
        if (*s++ != *name++)
            return 0;
    return *s == '=' ? s + 1 : 0;
}

static void note_first(struct env_var *v, char **slot, const char *value)
{
    if (value && !v->slot) {
        v->slot = slot;
        v->value = value;
    }
}

/* Reads every variable the shim honours; never called in secure mode. */
static void scan_env(struct context *c)
{
    for (char **e = c->envp; *e; e++) {
        const char *s = *e;
        if (s[0] == 'N' && s[1] == 'I') {
            note_first(&c->nix_ld, e, env_value(s, "NIX_LD"));
            note_first(&c->nix_ld_sys, e, env_value(s, "NIX_LD_" NIXLD_SYSTEM));
            note_first(&c->nix_ld_library_path, e, env_value(s, "NIX_LD_LIBRARY_PATH"));
            note_first(&c->nix_ld_library_path_sys, e,
                       env_value(s, "NIX_LD_LIBRARY_PATH_" NIXLD_SYSTEM));
        } else if (s[0] == 'L') {
            /* The loader honours the last LD_LIBRARY_PATH; so do we. */
            const char *v = env_value(s, "LD_LIBRARY_PATH");
            if (v) {
                c->ld_library_path.slot = e;
                c->ld_library_path.value = v;
            }
        } else {
            note_first(&c->xdg_state_home, e, env_value(s, "XDG_STATE_HOME"));
            note_first(&c->home, e, env_value(s, "HOME"));
        }
    }
}

static void find_auxv_slots(struct context *c)
{
    uintptr_t *a = c->auxv;
    for (; a[0] != AT_NULL; a += 2) {
        switch (a[0]) {
        case AT_BASE: c->at_base = &a[1]; break;
        case AT_ENTRY: c->at_entry = &a[1]; break;
        case AT_PAGESZ: c->pagesz = a[1]; break;
        case AT_PHDR: c->phdr = a[1]; break;
        case AT_PHENT: c->phent = a[1]; break;
        case AT_PHNUM: c->phnum = a[1]; break;
        case AT_SECURE: c->secure = a[1] != 0; break;
        case AT_EXECFN: c->execfn = (const char *)a[1]; break;
        default: break;
        }
    }
    c->auxv_words = (size_t)(a - c->auxv) + 2;
}

static void init_ctx(struct context *c, uintptr_t *sp)
{
    memset(c, 0, sizeof *c);
    c->exe_fd = c->fd_lo = c->fd_hi = -1;
    c->sp = sp;
    c->argc = (long)sp[0];
    c->argv = (char **)(sp + 1);
    c->envp = c->argv + c->argc + 1;
    while (c->envp[c->envc])
        c->envc++;
    c->auxv = (uintptr_t *)(c->envp + c->envc + 1);
    c->pagesz = 4096;
    find_auxv_slots(c);
    if (!c->secure)
        scan_env(c);
}

/* `NIX_LD_<system>`, else `NIX_LD` (not on i686: see NIXLD_FOREIGN_I686),
 * else the default; empty means unset. */
static void choose_loader(struct context *c)
{
    c->ld_path = NIXLD_DEFAULT_LD;
    if (c->secure)
        return; /* glibc ignores the environment here; so do we */
    if (c->nix_ld_sys.value && *c->nix_ld_sys.value)
        c->ld_path = c->nix_ld_sys.value;
    else if (!NIXLD_FOREIGN_I686 && c->nix_ld.value && *c->nix_ld.value)
        c->ld_path = c->nix_ld.value;
}

/* --- Per-binary entries ------------------------------------------------- */

/* The executable now, asked once: what the Python side stat()s. */
__attribute__((noinline)) static void ask_identity(struct context *c)
{
    struct statx st;
    long r = c->exe_fd >= 0 ? sys_statx(c->exe_fd, "", AT_EMPTY_PATH, &st)
                            : sys_statx(AT_FDCWD, c->exe, 0, &st);
    c->identity_known = sys_failed(r) ? -1 : 1;
    /* st_dev as the kernel's stat() encodes it (new_encode_dev). */
    uint64_t major = st.stx_dev_major, minor = st.stx_dev_minor;
    c->identity.dev = (minor & 0xff) | (major << 8) | ((minor & ~0xffULL) << 12);
    c->identity.ino = st.stx_ino;
    c->identity.size = st.stx_size;
    c->identity.mtime_sec = st.stx_mtime.tv_sec;
    c->identity.mtime_nsec = st.stx_mtime.tv_nsec;
}

static const struct identity *identity(struct context *c)
{
    if (!c->identity_known)
        ask_identity(c);
    return c->identity_known > 0 ? &c->identity : 0;
}

static int identity_matches(struct context *c, const struct nixld_entry *e)
{
    const struct identity *id = identity(c);
    return id && e->dev == id->dev && e->ino == id->ino && e->size == id->size &&
           e->mtime_sec == id->mtime_sec && e->mtime_nsec == id->mtime_nsec;
}

static void path_add(struct context *c, const char *s, size_t n);

/* What an entry file is looked up by (FORMAT.md): the canonical path, or
 * the program's build-id (`key` its hex digits). */
struct lookup {
    int by_build_id;
    int need_identity; /* per-user path entries must have dev/ino/size/mtime */
    const char *key;
    size_t key_len;
};

/* Whether a parsed entry applies to this executable. */
static int entry_applies(struct context *c, const struct nixld_entry *e, const struct lookup *l)
{
    if (l->by_build_id) {
        const struct identity *id = identity(c);
        return e->build_id.len == l->key_len && mem_eq(e->build_id.ptr, l->key, l->key_len) &&
               id && e->size == id->size;
    }
    if (e->build_id.len)
        return 0; /* a build-id entry under a path entry's name */
    if (e->path.len != c->exe_len || !mem_eq(e->path.ptr, c->exe, c->exe_len))
        return 0; /* a hash collision */
    return e->has_identity ? identity_matches(c, e) : !l->need_identity;
}

static void done_with_fd(struct context *c, int fd);

/* Checks the entry file's bytes; if it applies, appends its dirs to the
 * library path and returns 1. */
static int apply_bytes(struct context *c, const char *buf, size_t len, const struct lookup *l)
{
    struct nixld_entry e;
    if (!nixld_parse_entry(buf, len, &e) || !entry_applies(c, &e, l))
        return 0;
    for (size_t i = 0; i < e.ndirs; i++)
        path_add(c, e.dirs[i].ptr, e.dirs[i].len);
    return 1;
}

/* Reads the rest of an entry file bigger than the first read, into a 64 KiB
 * buffer whose stack pages are touched only for such a file. */
__attribute__((noinline)) static int apply_big_entry(struct context *c, int fd, const char *head,
                                                     size_t len, const struct lookup *l)
{
    char buf[NIXLD_ENTRY_MAX + 1];
    long n;
    memcpy(buf, head, len);
    while (len <= NIXLD_ENTRY_MAX &&
           (n = sys_read(fd, buf + len, NIXLD_ENTRY_MAX + 1 - len)) > 0)
        len += (size_t)n;
    done_with_fd(c, fd);
    return apply_bytes(c, buf, len, l);
}

/* Reads and checks the open entry file `fd`; 1 if it applied. Out of line:
 * its pages of stack are touched only when an entry file exists. One read
 * usually: a read of a regular file that returns less than asked is at its
 * end (and were it not, the entry would lack its `end` line and be ignored). */
__attribute__((noinline)) static int apply_entry(struct context *c, int fd,
                                                 const struct lookup *l)
{
    char buf[2048];
    long n = sys_read(fd, buf, sizeof buf);
    if (n == (long)sizeof buf)
        return apply_big_entry(c, fd, buf, sizeof buf, l);
    done_with_fd(c, fd);
    return n > 0 && apply_bytes(c, buf, (size_t)n, l);
}

/* `<dir><sub>/<key><suffix>` into out; 0 if it does not fit. */
static int entry_file(char *out, const char *dir, const char *sub, const struct lookup *l)
{
    size_t dl = str_len(dir), sl = str_len(sub);
    if (dl + sl + l->key_len + 16 > PATH_BUF)
        return 0;
    char *p = put(out, dir, dl);
    p = put(p, sub, sl);
    *p++ = '/';
    p = put(p, l->key, l->key_len);
    p = put_str(p, l->by_build_id ? ".build-id" : ".entry");
    *p = 0;
    return 1;
}

/* Looks up one entry file; 1 if it applied. */
static int try_entry(struct context *c, char *file, const char *dir, const char *sub,
                     const struct lookup *l)
{
    if (!l->key_len || !entry_file(file, dir, sub, l))
        return 0;
    long fd = sys_open(file);
    return !sys_failed(fd) && apply_entry(c, (int)fd, l);
}

/* In one entries directory: the path entry, else the build-id entry. */
static void find_in(struct context *c, char *file, const char *dir, const char *sub,
                    struct lookup *by_path, struct lookup *by_id)
{
    if (!try_entry(c, file, dir, sub, by_path))
        try_entry(c, file, dir, sub, by_id);
}

/* --- The program's build-id, from its own headers in memory -------------- */

static uintptr_t align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }

/* Whether [vaddr, vaddr+size) lies in a readable PT_LOAD's file-backed part:
 * mapped, so reading it cannot fault. */
static int mapped(const Elf_Phdr *ph, uintptr_t phnum, uintptr_t vaddr, uintptr_t size)
{
    for (uintptr_t i = 0; i < phnum; i++)
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_R) && vaddr >= ph[i].p_vaddr &&
            size <= ph[i].p_filesz && vaddr - ph[i].p_vaddr <= ph[i].p_filesz - size)
            return 1;
    return 0;
}

/* The NT_GNU_BUILD_ID descriptor in one PT_NOTE at `notes` (`size` bytes,
 * aligned to `align`); its length, 0 if none. */
static size_t note_build_id(const char *notes, uintptr_t size, uintptr_t align,
                            const unsigned char **id)
{
    uintptr_t off = 0;
    while (off < size && size - off >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, notes + off, 4);
        memcpy(&descsz, notes + off + 4, 4);
        memcpy(&type, notes + off + 8, 4);
        /* As glibc: the descriptor at the aligned end of header and name,
         * the next note at the aligned end of the descriptor. */
        uintptr_t name = off + 12;
        if (namesz > size - name)
            return 0;
        uintptr_t desc = off + align_up(12 + namesz, align);
        if (desc > size || descsz > size - desc)
            return 0;
        if (type == NT_GNU_BUILD_ID && namesz == 4 && mem_eq(notes + name, "GNU", 4) &&
            descsz >= 1 && descsz <= NIXLD_BUILD_ID_MAX) {
            *id = (const unsigned char *)notes + desc;
            return descsz;
        }
        off = align_up(desc + descsz, align);
    }
    return 0;
}

/* The program's build-id as lowercase hex into `hex` (no file read: AT_PHDR,
 * the load bias from PT_PHDR); its length, 0 when it has none. */
static size_t build_id_hex(const struct context *c, char *hex)
{
    const Elf_Phdr *ph = (const Elf_Phdr *)c->phdr;
    if (!ph || c->phent != sizeof(Elf_Phdr) || c->phnum > 4096)
        return 0;
    uintptr_t bias = 0, i;
    for (i = 0; i < c->phnum && ph[i].p_type != PT_PHDR; i++)
        ;
    if (i == c->phnum)
        return 0; /* no PT_PHDR: the bias is unknown */
    bias = c->phdr - ph[i].p_vaddr;
    for (i = 0; i < c->phnum; i++) {
        const Elf_Phdr *p = &ph[i];
        const unsigned char *id = 0;
        if (p->p_type != PT_NOTE || (p->p_align != 4 && p->p_align != 8) ||
            !mapped(ph, c->phnum, p->p_vaddr, p->p_filesz))
            continue;
        size_t n = note_build_id((const char *)(bias + p->p_vaddr), p->p_filesz, p->p_align, &id);
        for (size_t k = 0; k < n; k++) {
            hex[2 * k] = "0123456789abcdef"[id[k] >> 4];
            hex[2 * k + 1] = "0123456789abcdef"[id[k] & 0xf];
        }
        if (n)
            return 2 * n;
    }
    return 0;
}

/* --- Finding the entries ---------------------------------------------------- */

static int absolute(const char *s) { return s && s[0] == '/'; }

/* A path with no empty, "." or ".." component (after any leading "./"). */
static int plain_path(const char *s)
{
    for (const char *p = s;; p++) {
        const char *start = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - start);
        if ((n == 0 && start != s) || (n == 1 && start[0] == '.') ||
            (n == 2 && start[0] == '.' && start[1] == '.'))
            return 0;
        if (!*p)
            return 1;
    }
}

/* AT_EXECFN as an absolute path into `buf` (after the cwd if relative) when
 * it is a plain path (no empty, "." or ".." part); its length, else 0. */
static size_t execfn_path(const struct context *c, char *buf)
{
    const char *fn = c->execfn;
    if (!fn || !fn[0])
        return 0;
    size_t len = 0;
    if (fn[0] != '/') {
        while (fn[0] == '.' && fn[1] == '/')
            fn += 2;
        long r = sys_getcwd(buf, PATH_BUF);
        if (sys_failed(r) || buf[0] != '/')
            return 0;
        len = str_len(buf);
        if (len > 1)
            buf[len++] = '/'; /* (the cwd "/" already ends in one) */
    }
    size_t n = str_len(fn);
    if (len + n >= PATH_BUF || !plain_path(fn))
        return 0;
    put(buf + len, fn, n + 1);
    return len + n;
}

/* The keys of one executable path: its FNV-1a hash and the build-id. */
struct keys {
    char hex[16], id_hex[2 * NIXLD_BUILD_ID_MAX];
    struct lookup by_path, by_id;
};

static void set_exe(struct context *c, struct keys *k, const char *exe, size_t len)
{
    c->exe = exe;
    c->exe_len = len;
    k->by_path = (struct lookup){0, 1, k->hex, 16};
    for (size_t i = 0; i < len; i++)
        if (exe[i] == '\n')
            k->by_path.key_len = 0; /* cannot have a path entry (FORMAT.md) */
    nixld_hex16(nixld_fnv1a64(exe, len), k->hex);
}

/* The per-user entries directory, as `dir` + `sub`; 0 if there is none. */
static const char *user_dir(const struct context *c, const char **sub)
{
    *sub = "/nixld/entries";
    if (absolute(c->xdg_state_home.value))
        return c->xdg_state_home.value;
    *sub = "/.local/state/nixld/entries";
    return absolute(c->home.value) ? c->home.value : 0;
}

/* How far the per-user directory was looked at before find_entries. */
enum user_lookup { USER_UNTRIED, USER_PATH_MISSED, USER_APPLIED };

/* Appends the dirs of the entries that apply: per-user, then system-wide;
 * in each, the path entry, else the build-id entry (FORMAT.md). */
static void find_entries(struct context *c, struct keys *k, enum user_lookup user)
{
    char *file = scratch.io.names + c->exe_len + 1; /* PATH_BUF bytes at least */
    const char *sub, *dir = user_dir(c, &sub);
    if (dir && user != USER_APPLIED &&
        (user == USER_PATH_MISSED || !try_entry(c, file, dir, sub, &k->by_path)))
        try_entry(c, file, dir, sub, &k->by_id);
    struct lookup sys_path = k->by_path;
    sys_path.need_identity = 0;
    find_in(c, file, NIXLD_SYSTEM_ENTRIES_DIR, "", &sys_path, &k->by_id);
}

/* The key is the canonical path P (FORMAT.md). AT_EXECFN is tried first
 * with no system call: a per-user path entry found under it whose path and
 * whole identity match is this very file at the path it was resolved at,
 * and a per-user build-id entry needs no path at all, so either applies at
 * once. Otherwise AT_EXECFN counts as P only if no component is a symlink
 * (one openat2), else P comes from readlink("/proc/self/exe"), exact but
 * slow in a fresh process (procfs first builds the new pid's entries). */
static void find_entry(struct context *c)
{
    struct keys k;
    const char *sub;
    char *buf = scratch.io.names;
    if (c->secure)
        return;
    k.by_id = (struct lookup){1, 0, k.id_hex, build_id_hex(c, k.id_hex)};
    size_t len = execfn_path(c, buf);
    if (len) {
        set_exe(c, &k, buf, len);
        const char *dir = user_dir(c, &sub);
        if (dir && (try_entry(c, buf + len + 1, dir, sub, &k.by_path) ||
                    try_entry(c, buf + len + 1, dir, sub, &k.by_id))) {
            find_entries(c, &k, USER_APPLIED);
            return;
        }
        long fd = sys_open_no_symlinks(buf);
        if (!sys_failed(fd)) {
            c->exe_fd = (int)fd;
            done_with_fd(c, (int)fd); /* closed at the end: statx may need it */
            find_entries(c, &k, USER_PATH_MISSED);
            return;
        }
        c->identity_known = 0; /* a statx of AT_EXECFN says nothing of P */
    }
    long n = sys_readlink("/proc/self/exe", buf, PATH_BUF);
    if (sys_failed(n) || n <= 0 || n >= PATH_BUF)
        return;
    buf[n] = 0;
    set_exe(c, &k, buf, (size_t)n);
    find_entries(c, &k, USER_UNTRIED);
}

/* --- The loader ---------------------------------------------------------- */

static void open_ld(struct context *c)
{
    long fd = sys_open(c->ld_path);
    if (sys_failed(fd))
        die("cannot open loader", c->ld_path, fd);
    c->ld_fd = (int)fd;
}

/* Reads and checks the loader's ELF header and program headers. */
static void elf_map(struct context *c)
{
    Elf_Ehdr *h = &c->ehdr;
    char *head = scratch.io.head;
    long n = sys_pread(c->ld_fd, head, sizeof scratch.io.head, 0);
    if (n < (long)sizeof *h)
        die("bad loader", c->ld_path, -ENOEXEC);
    memcpy(h, head, sizeof *h);
    if (!mem_eq((const char *)h->e_ident, "\177ELF", 4) || h->e_ident[4] != ELF_CLASS_SELF ||
        h->e_ident[5] != 1 || h->e_type != ET_DYN ||
        h->e_machine != NIXLD_EM_SELF || h->e_phentsize != sizeof(Elf_Phdr) ||
        h->e_phnum == 0 || h->e_phnum > MAX_PHDRS)
        die("bad loader", c->ld_path, -ENOEXEC);
    size_t size = (size_t)h->e_phnum * sizeof(Elf_Phdr);
    if (h->e_phoff % 8 == 0 && h->e_phoff <= (uint64_t)n && size <= (uint64_t)n - h->e_phoff)
        c->phdrs = (const Elf_Phdr *)(head + h->e_phoff);
    else if (sys_pread(c->ld_fd, head, size, (long)h->e_phoff) == (long)size)
        c->phdrs = (const Elf_Phdr *)head; /* the header was copied out */
    else
        die("bad loader", c->ld_path, -ENOEXEC);
}

static uintptr_t page_down(uintptr_t x, uintptr_t page) { return x & ~(page - 1); }
static uintptr_t page_up(uintptr_t x, uintptr_t page) { return (x + page - 1) & ~(page - 1); }

static int prot_of(uint32_t flags)
{
    return ((flags & 4) ? PROT_READ : 0) | ((flags & 2) ? PROT_WRITE : 0) |
           ((flags & 1) ? PROT_EXEC : 0);
}

/* Whether the first segment's mapping of the whole span already maps `p` as
 * it would be mapped on its own: the same protection and the same distance
 * between file offset and address (as for glibc's ld.so's read-only data). */
static int already_mapped(const Elf_Phdr *first, const Elf_Phdr *p)
{
    return first && prot_of(p->p_flags) == prot_of(first->p_flags) &&
           p->p_vaddr - p->p_offset == first->p_vaddr - first->p_offset;
}

/* Our fds are closed together at the end: the kernel hands out the lowest
 * free fd, so the executable's O_PATH fd, the entry files' and the loader's
 * are usually one run, which one close_range (Linux 5.9) closes. An fd that
 * does not extend the run is closed at once (the fds between are not ours). */
static void done_with_fd(struct context *c, int fd)
{
    if (c->fd_lo < 0) {
        c->fd_lo = c->fd_hi = fd;
    } else if (fd == c->fd_hi + 1) {
        c->fd_hi = fd;
    } else {
        sys_close(fd);
    }
}

static void close_fds(struct context *c)
{
    done_with_fd(c, c->ld_fd);
    if (sys_failed(sys_close_range(c->fd_lo, c->fd_hi)))
        for (int fd = c->fd_lo; fd <= c->fd_hi; fd++) /* an older kernel */
            sys_close(fd);
}

/* Reserves the loader's whole span, then maps each PT_LOAD into it, as the
 * kernel maps an interpreter. */
static void elf_load(struct context *c)
{
    uintptr_t page = c->pagesz, lo = UINTPTR_MAX, hi = 0, align = page;
    for (int i = 0; i < c->ehdr.e_phnum; i++) {
        const Elf_Phdr *p = &c->phdrs[i];
        if (p->p_type != PT_LOAD)
            continue;
        if (p->p_memsz < p->p_filesz || (p->p_vaddr - p->p_offset) % page)
            die("bad loader", c->ld_path, -ENOEXEC);
        if (p->p_vaddr < lo)
            lo = p->p_vaddr;
        if (p->p_vaddr + p->p_memsz > hi)
            hi = p->p_vaddr + p->p_memsz;
        if (p->p_align > align && p->p_align <= 0x200000)
            align = p->p_align;
    }
    if (lo >= hi)
        die("bad loader", c->ld_path, -ENOEXEC);
    lo = page_down(lo, page);
    hi = page_up(hi, page);

    const Elf_Phdr *first = 0;
    for (int i = 0; i < c->ehdr.e_phnum && !first; i++)
        if (c->phdrs[i].p_type == PT_LOAD)
            first = &c->phdrs[i];
    size_t span = hi - lo;
    long r;
    if (align == page && first->p_filesz && page_down(first->p_vaddr, page) == lo) {
        /* As the kernel does: the first segment's mapping covers the whole
         * span, the later segments are then mapped over it. */
        r = sys_mmap(0, span, prot_of(first->p_flags), MAP_PRIVATE, c->ld_fd,
                     (long)page_down(first->p_offset, page));
        if (sys_failed(r))
            die("cannot map loader", c->ld_path, r);
        c->ld_bias = (uintptr_t)r - lo;
    } else {
        /* Over-reserve by the alignment, then give back both ends. */
        size_t extra = align - page;
        r = sys_mmap(0, span + extra, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (sys_failed(r))
            die("cannot map loader", c->ld_path, r);
        uintptr_t raw = (uintptr_t)r, base = page_up(raw, align);
        if (base > raw)
            sys_munmap((void *)raw, base - raw);
        if (raw + extra > base)
            sys_munmap((void *)(base + span), raw + extra - base);
        c->ld_bias = base - lo;
        first = 0;
    }

    for (int i = 0; i < c->ehdr.e_phnum; i++) {
        const Elf_Phdr *p = &c->phdrs[i];
        if (p->p_type != PT_LOAD)
            continue;
        int prot = prot_of(p->p_flags);
        uintptr_t start = page_down(p->p_vaddr, page);
        uintptr_t file_end = p->p_vaddr + p->p_filesz, mem_end = p->p_vaddr + p->p_memsz;
        if (p->p_filesz && p != first && !already_mapped(first, p)) {
            r = sys_mmap((void *)(c->ld_bias + start), page_up(file_end, page) - start, prot,
                         MAP_PRIVATE | MAP_FIXED, c->ld_fd,
                         (long)page_down(p->p_offset, page));
            if (sys_failed(r))
                die("cannot map loader", c->ld_path, r);
        }
        if (mem_end <= file_end)
            continue;
        /* .bss: zero the rest of the last file page, map fresh pages after it. */
        if (p->p_filesz && page_up(file_end, page) > file_end) {
            if (!(prot & PROT_WRITE))
                die("bad loader", c->ld_path, -ENOEXEC);
            memset((void *)(c->ld_bias + file_end), 0, page_up(file_end, page) - file_end);
        }
        uintptr_t zero_start = p->p_filesz ? page_up(file_end, page) : start;
        if (page_up(mem_end, page) > zero_start) {
            r = sys_mmap((void *)(c->ld_bias + zero_start), page_up(mem_end, page) - zero_start,
                         prot, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
            if (sys_failed(r))
                die("cannot map loader", c->ld_path, r);
        }
    }
    close_fds(c);
    c->ld_entry = c->ld_bias + c->ehdr.e_entry;
}

/* --- The library path ----------------------------------------------------- */

static void path_start(struct context *c)
{
    c->path.buf = path_buf;
    c->path.cap = sizeof path_buf;
    put_str(path_buf, LD_LIBRARY_PATH_EQ);
    c->path.len = sizeof LD_LIBRARY_PATH_EQ - 1;
}

/* Appends one part, with a ':' unless the list so far is empty or ends in
 * one (as nix-ld joins); moves to a bigger mmap when it does not fit. */
static void path_add(struct context *c, const char *s, size_t n)
{
    struct path *p = &c->path;
    if (n == 0)
        return;
    if (p->len + n + 2 > p->cap) {
        size_t cap = page_up(2 * (p->len + n + 2), c->pagesz);
        long r = sys_mmap(0, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (sys_failed(r))
            die("cannot build the library path for", c->ld_path, r);
        memcpy((char *)r, p->buf, p->len);
        if (p->buf != path_buf)
            sys_munmap(p->buf, p->cap);
        p->buf = (char *)r;
        p->cap = cap;
    }
    if (p->len > sizeof LD_LIBRARY_PATH_EQ - 1 && p->buf[p->len - 1] != ':')
        p->buf[p->len++] = ':';
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = 0;
}

/* `NIX_LD_LIBRARY_PATH_<system>`, else `NIX_LD_LIBRARY_PATH`, else the
 * default; empty means unset. */
static const char *nix_library_path(const struct context *c)
{
    if (c->nix_ld_library_path_sys.value && *c->nix_ld_library_path_sys.value)
        return c->nix_ld_library_path_sys.value;
    if (c->nix_ld_library_path.value && *c->nix_ld_library_path.value)
        return c->nix_ld_library_path.value;
    return NIXLD_DEFAULT_LIBRARY_PATH;
}

/* After the entries' dirs: $LD_LIBRARY_PATH, then NIX_LD_LIBRARY_PATH. */
static void build_library_path(struct context *c)
{
    const char *user = c->ld_library_path.value;
    if (user)
        path_add(c, user, str_len(user));
    const char *nix = nix_library_path(c);
    path_add(c, nix, str_len(nix));
}

/* --- The start block ------------------------------------------------------ */

/* Moves the start block down 16 bytes (two words, four on i686: sp stays
 * 16-byte aligned) to make room for one more environment slot, at the end of envp; returns it. Only
 * needed when there is no LD_LIBRARY_PATH nor NIX_LD* slot to borrow. The
 * 256 bytes _start left below sp are free for this. */
static char **insert_env_slot(struct context *c)
{
    uintptr_t *old = c->sp, *new = c->sp - 16 / sizeof(uintptr_t);
    size_t head = 1 + (size_t)c->argc + 1 + c->envc;
    for (size_t i = 0; i < head; i++)
        new[i] = old[i];
    new[head] = 0;
    new[head + 1] = 0;
    for (size_t j = 0; j < c->auxv_words; j++)
        new[head + 2 + j] = old[head + 1 + j];
    c->sp = new;
    c->argv = (char **)(new + 1);
    c->envp = c->argv + c->argc + 1;
    c->auxv = new + head + 2;
    c->at_base = c->at_entry = 0;
    find_auxv_slots(c);
    return (char **)&new[head];
}

/* Points one environment slot at our LD_LIBRARY_PATH and tells the trampoline
 * how to undo it: the user's own LD_LIBRARY_PATH slot if there is one, else a
 * NIX_LD* slot (ours; hidden from the loader only), else a new slot, which
 * the trampoline leaves as an empty LD_LIBRARY_PATH (glibc ignores it). */
static void set_library_path(struct context *c)
{
    static const char empty[] = LD_LIBRARY_PATH_EQ;
    char **slot = c->ld_library_path.slot;
    if (!slot)
        slot = c->nix_ld_library_path_sys.slot;
    if (!slot)
        slot = c->nix_ld_library_path.slot;
    if (!slot)
        slot = c->nix_ld_sys.slot;
    if (!slot)
        slot = c->nix_ld.slot;
    if (slot) {
        trampoline.env_value = *slot;
    } else {
        slot = insert_env_slot(c);
        trampoline.env_value = (char *)empty;
    }
    trampoline.env_slot = slot;
    *slot = c->path.buf;
}

/* Called by the trampoline on the program's stack, after the loader. */
__attribute__((used, visibility("hidden"))) uintptr_t nixld_restore(void)
{
    if (trampoline.env_slot)
        *trampoline.env_slot = trampoline.env_value;
    if (trampoline.auxv_entry)
        *trampoline.auxv_entry = trampoline.entry;
    return trampoline.entry;
}

__attribute__((noreturn)) static void jmp_ld(struct context *c)
{
    if (c->at_base)
        *c->at_base = c->ld_bias;
    if (!c->secure && c->at_entry) {
        trampoline.entry = *c->at_entry;
        trampoline.auxv_entry = c->at_entry;
        *c->at_entry = (uintptr_t)nixld_trampoline;
    }
    nixld_jump(c->sp, c->ld_entry);
}

/* --- Run directly --------------------------------------------------------- */

static void say(const char *s) { sys_write(2, s, str_len(s)); }

/* `nixld-shim PROGRAM ARGS...` runs the real loader with them, as running
 * ld.so directly would, with the library path but no entry (the executable
 * would be the loader). */
__attribute__((noreturn)) static void run_directly(struct context *c)
{
    if (c->argc < 2) {
        say("usage: nixld-shim PROGRAM [ARGS...]\n"
            "An ELF interpreter (nix-ld compatible): loads the loader named by\n"
            NIXLD_LOADER_VARS " (default " NIXLD_DEFAULT_LD ")\n"
            "with the library path: the per-binary entry's dirs (from\n"
            "$XDG_STATE_HOME/nixld/entries, then " NIXLD_SYSTEM_ENTRIES_DIR "),\n"
            "$LD_LIBRARY_PATH, then NIX_LD_LIBRARY_PATH_" NIXLD_SYSTEM " or\n"
            "NIX_LD_LIBRARY_PATH (default " NIXLD_DEFAULT_LIBRARY_PATH ").\n");
        sys_exit(1);
    }
    path_start(c);
    build_library_path(c);
    size_t size = (c->envc + 2) * sizeof(char *);
    long r = sys_mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sys_failed(r))
        die("cannot run loader", c->ld_path, r);
    char **env = (char **)r;
    for (size_t i = 0; i < c->envc; i++)
        env[i] = c->envp[i];
    if (c->ld_library_path.slot)
        env[c->ld_library_path.slot - c->envp] = c->path.buf;
    else
        env[c->envc] = c->path.buf;
    r = sys_execve(c->ld_path, c->argv, env);
    die("cannot run loader", c->ld_path, r);
}

__attribute__((noreturn, used)) void nixld_main(uintptr_t *sp)
{
    struct context c;
    init_ctx(&c, sp);
    choose_loader(&c);
    if (!c.at_base || *c.at_base == 0)
        run_directly(&c);
    path_start(&c);
    find_entry(&c);
    open_ld(&c);
    elf_map(&c);
    elf_load(&c);
    if (!c.secure) {
        build_library_path(&c);
        set_library_path(&c);
    }
    jmp_ld(&c);
}
