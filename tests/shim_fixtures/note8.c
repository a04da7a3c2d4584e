/* use_who with its build-id in a note of its own, aligned to 8 (link with
 * --build-id=none): the shim and nixld/elf.py must honour the PT_NOTE's
 * p_align of 8, as for .note.gnu.property. */
__asm__(".section .note.nixld.test,\"a\",@note\n"
        ".balign 8\n"
        ".long 4\n"  /* namesz: "GNU\0" */
        ".long 20\n" /* descsz */
        ".long 3\n"  /* NT_GNU_BUILD_ID */
        ".asciz \"GNU\"\n"
        ".balign 8\n"
        ".byte 0x8a,0x11,0x22,0x33,0x44,0x55,0x66,0x77,0x88,0x99\n"
        ".byte 0xaa,0xbb,0xcc,0xdd,0xee,0xff,0x00,0x01,0x02,0x03\n"
        ".balign 8\n"
        ".previous\n");
