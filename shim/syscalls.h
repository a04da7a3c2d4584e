/* Minimal Linux system calls for the freestanding shim (no libc).
 *
 * The per-architecture file (arch-x86_64.c, arch-aarch64.c, arch-i686.c) provides
 * nixld_syscall6 and the few routines that must be written in assembly;
 * everything here is portable. Calls return the raw kernel result: a value
 * in [-4095, -1] is -errno. */
#ifndef NIXLD_SYSCALLS_H
#define NIXLD_SYSCALLS_H

#include <stddef.h>
#include <stdint.h>

/* Everything is linked into one static-pie: keep symbols local so that no
 * address needs a GOT slot (there is nothing to relocate one). */
#pragma GCC visibility push(hidden)

#if defined(__x86_64__)
#define NIXLD_SYSTEM "x86_64_linux"
#define NIXLD_EM_SELF 62 /* EM_X86_64 */
enum {
    SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_mmap = 9, SYS_munmap = 11,
    SYS_pread64 = 17, SYS_execve = 59, SYS_exit_group = 231, SYS_openat = 257,
    SYS_readlinkat = 267, SYS_statx = 332, SYS_getcwd = 79, SYS_openat2 = 437,
    SYS_close_range = 436,
};
#elif defined(__aarch64__)
#define NIXLD_SYSTEM "aarch64_linux"
#define NIXLD_EM_SELF 183 /* EM_AARCH64 */
enum {
    SYS_read = 63, SYS_write = 64, SYS_close = 57, SYS_mmap = 222, SYS_munmap = 215,
    SYS_pread64 = 67, SYS_execve = 221, SYS_exit_group = 94, SYS_openat = 56,
    SYS_readlinkat = 78, SYS_statx = 291, SYS_getcwd = 17, SYS_openat2 = 437,
    SYS_close_range = 436,
};
#elif defined(__i386__)
#define NIXLD_SYSTEM "i686_linux"
#define NIXLD_EM_SELF 3 /* EM_386 */
#define NIXLD_MMAP2 1 /* mmap2: the offset in 4096-byte units */
#define NIXLD_PREAD_SPLIT 1 /* pread64: the 64-bit offset in two registers */
enum {
    SYS_read = 3, SYS_write = 4, SYS_close = 6, SYS_mmap = 192 /* mmap2 */, SYS_munmap = 91,
    SYS_pread64 = 180, SYS_execve = 11, SYS_exit_group = 252, SYS_openat = 295,
    SYS_readlinkat = 305, SYS_statx = 383, SYS_getcwd = 183, SYS_openat2 = 437,
    SYS_close_range = 436,
};
#else
#error "nixld-shim supports x86_64, aarch64 and i686"
#endif

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_CLOEXEC 02000000
#define O_PATH 010000000
#define RESOLVE_NO_SYMLINKS 0x04
#define AT_EMPTY_PATH 0x1000
#define AT_SYMLINK_NOFOLLOW 0x100
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define STATX_BASIC_STATS 0x7ffU
#define ENOENT 2
#define ENOEXEC 8
#define ENOMEM 12
#define EACCES 13

struct open_how { uint64_t flags, mode, resolve; };
struct statx_timestamp { int64_t tv_sec; uint32_t tv_nsec; int32_t reserved; };
struct statx {
    uint32_t stx_mask, stx_blksize;
    uint64_t stx_attributes;
    uint32_t stx_nlink, stx_uid, stx_gid;
    uint16_t stx_mode, spare0;
    uint64_t stx_ino, stx_size, stx_blocks, stx_attributes_mask;
    struct statx_timestamp stx_atime, stx_btime, stx_ctime, stx_mtime;
    uint32_t stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
    uint64_t spare2[14];
};

/* Provided by the architecture file. */
long nixld_syscall6(long n, long a, long b, long c, long d, long e, long f);
/* Switch to the stack `sp` and jump to the loader's entry point. */
__attribute__((noreturn)) void nixld_jump(uintptr_t *sp, uintptr_t entry);
/* Entry point handed to the loader as AT_ENTRY: calls nixld_restore(), then
 * jumps to the program's own entry point with the loader's registers intact. */
void nixld_trampoline(void);

static inline int sys_failed(long r) { return r < 0 && r > -4096; }

static inline long sys_read(int fd, void *buf, size_t n)
{ return nixld_syscall6(SYS_read, fd, (long)buf, (long)n, 0, 0, 0); }
static inline long sys_write(int fd, const void *buf, size_t n)
{ return nixld_syscall6(SYS_write, fd, (long)buf, (long)n, 0, 0, 0); }
#ifdef NIXLD_PREAD_SPLIT
static inline long sys_pread(int fd, void *buf, size_t n, long off)
{ return nixld_syscall6(SYS_pread64, fd, (long)buf, (long)n, off, off < 0 ? -1 : 0, 0); }
#else
static inline long sys_pread(int fd, void *buf, size_t n, long off)
{ return nixld_syscall6(SYS_pread64, fd, (long)buf, (long)n, off, 0, 0); }
#endif
static inline long sys_open(const char *path)
{ return nixld_syscall6(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0); }
static inline long sys_close(int fd)
{ return nixld_syscall6(SYS_close, fd, 0, 0, 0, 0, 0); }
static inline long sys_close_range(int lo, int hi)
{ return nixld_syscall6(SYS_close_range, lo, hi, 0, 0, 0, 0); }
#ifdef NIXLD_MMAP2
static inline long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{ return nixld_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off >> 12); }
#else
static inline long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{ return nixld_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off); }
#endif
static inline long sys_munmap(void *addr, size_t len)
{ return nixld_syscall6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0); }
static inline long sys_readlink(const char *path, char *buf, size_t n)
{ return nixld_syscall6(SYS_readlinkat, AT_FDCWD, (long)path, (long)buf, (long)n, 0, 0); }
static inline long sys_statx(int dirfd, const char *path, int flags, struct statx *st)
{ return nixld_syscall6(SYS_statx, dirfd, (long)path, flags, STATX_BASIC_STATS, (long)st, 0); }
static inline long sys_getcwd(char *buf, size_t n)
{ return nixld_syscall6(SYS_getcwd, (long)buf, (long)n, 0, 0, 0, 0); }
/* Opens `path` only if no component of it is a symbolic link. */
static inline long sys_open_no_symlinks(const char *path)
{
    struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS};
    return nixld_syscall6(SYS_openat2, AT_FDCWD, (long)path, (long)&how, sizeof how, 0, 0);
}
static inline long sys_execve(const char *path, char **argv, char **envp)
{ return nixld_syscall6(SYS_execve, (long)path, (long)argv, (long)envp, 0, 0, 0); }
__attribute__((noreturn)) static inline void sys_exit(int code)
{
    for (;;)
        nixld_syscall6(SYS_exit_group, code, 0, 0, 0, 0, 0);
}

#pragma GCC visibility pop

#endif
