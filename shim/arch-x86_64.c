/* x86_64: process entry, system calls, the jump to the loader and the
 * entry trampoline. Everything else is portable C. */
#include "syscalls.h"

/* The kernel enters here with %rsp at argc. Our own frames start 256 bytes
 * lower, so the start block above may grow downwards by a few words. */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "    xor %ebp, %ebp\n"
    "    mov %rsp, %rdi\n"
    "    lea -256(%rsp), %rsp\n"
    "    and $-16, %rsp\n"
    "    call nixld_main\n"
    "    ud2\n"

    /* %rdx (rtld_fini from the loader) must reach the program's entry. */
    ".globl nixld_trampoline\n"
    ".type nixld_trampoline,@function\n"
    "nixld_trampoline:\n"
    "    push %rdx\n"
    "    sub $8, %rsp\n"
    "    call nixld_restore\n"
    "    add $8, %rsp\n"
    "    pop %rdx\n"
    "    jmp *%rax\n"

    /* The loader's _start expects the kernel's state: %rsp at argc, %rdx 0. */
    ".globl nixld_jump\n"
    ".type nixld_jump,@function\n"
    "nixld_jump:\n"
    "    mov %rdi, %rsp\n"
    "    xor %edx, %edx\n"
    "    jmp *%rsi\n");

long nixld_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
