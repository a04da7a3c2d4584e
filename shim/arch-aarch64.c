/* aarch64: process entry, system calls, the jump to the loader and the
 * entry trampoline. Everything else is portable C. */
#include "syscalls.h"

/* The kernel enters here with sp at argc. Our own frames start 256 bytes
 * lower, so the start block above may grow downwards by a few words. */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,%function\n"
    "_start:\n"
    "    mov x29, #0\n"
    "    mov x30, #0\n"
    "    mov x0, sp\n"
    "    sub x1, x0, #256\n"
    "    and sp, x1, #-16\n"
    "    bl nixld_main\n"
    "    brk #0\n"

    /* x0 (rtld_fini from the loader) must reach the program's entry. */
    ".globl nixld_trampoline\n"
    ".type nixld_trampoline,%function\n"
    "nixld_trampoline:\n"
    "    stp x0, x30, [sp, #-16]!\n"
    "    bl nixld_restore\n"
    "    mov x16, x0\n"
    "    ldp x0, x30, [sp], #16\n"
    "    br x16\n"

    /* The loader's _start expects the kernel's state: sp at argc, x0 0. */
    ".globl nixld_jump\n"
    ".type nixld_jump,%function\n"
    "nixld_jump:\n"
    "    mov sp, x0\n"
    "    mov x16, x1\n"
    "    mov x0, #0\n"
    "    mov x1, #0\n"
    "    br x16\n");

long nixld_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
