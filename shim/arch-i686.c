/* i686: process entry, system calls, the jump to the loader and the entry
 * trampoline. Everything else is portable C. The i386 ABI passes arguments
 * on the stack and wants it 16-byte aligned at each call. */
#include "syscalls.h"

/* The kernel enters here with %esp at argc. Our own frames start 256 bytes
 * lower, so the start block above may grow downwards by a few words. */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "    xor %ebp, %ebp\n"
    "    mov %esp, %eax\n"
    "    lea -256(%esp), %esp\n"
    "    and $-16, %esp\n"
    "    sub $12, %esp\n"
    "    push %eax\n"
    "    call nixld_main\n"
    "    ud2\n"

    /* %edx (rtld_fini from the loader) must reach the program's entry. */
    ".globl nixld_trampoline\n"
    ".type nixld_trampoline,@function\n"
    "nixld_trampoline:\n"
    "    push %edx\n"
    "    sub $12, %esp\n"
    "    call nixld_restore\n"
    "    add $12, %esp\n"
    "    pop %edx\n"
    "    jmp *%eax\n"

    /* The loader's _start expects the kernel's state: %esp at argc, %edx 0. */
    ".globl nixld_jump\n"
    ".type nixld_jump,@function\n"
    "nixld_jump:\n"
    "    mov 8(%esp), %eax\n"
    "    mov 4(%esp), %esp\n"
    "    xor %edx, %edx\n"
    "    jmp *%eax\n"

    /* int $0x80: number in %eax, arguments in %ebx %ecx %edx %esi %edi %ebp;
     * the four callee-saved ones are kept. */
    ".globl nixld_syscall6\n"
    ".type nixld_syscall6,@function\n"
    "nixld_syscall6:\n"
    "    push %ebx\n"
    "    push %esi\n"
    "    push %edi\n"
    "    push %ebp\n"
    "    mov 20(%esp), %eax\n"
    "    mov 24(%esp), %ebx\n"
    "    mov 28(%esp), %ecx\n"
    "    mov 32(%esp), %edx\n"
    "    mov 36(%esp), %esi\n"
    "    mov 40(%esp), %edi\n"
    "    mov 44(%esp), %ebp\n"
    "    int $0x80\n"
    "    pop %ebp\n"
    "    pop %edi\n"
    "    pop %esi\n"
    "    pop %ebx\n"
    "    ret\n");
