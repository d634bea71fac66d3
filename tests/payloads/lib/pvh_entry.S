/* PVH entry (Xen's HVM direct boot ABI): 32-bit protected mode, paging off,
 * RBX = hvm_start_info. The ELF note below tells the VMM where this is
 * (XEN_ELFNOTE_PHYS32_ENTRY = 18, include/xen/interface/elfnote.h). We enter
 * long mode with the kit's 4 GiB identity tables and call payload_main(). */
#include "entry_common.S"

  .section .note.Xen, "a", @note
  .align 4
  .long 4          /* namesz: "Xen\0" */
  .long 4          /* descsz */
  .long 18         /* XEN_ELFNOTE_PHYS32_ENTRY */
  .asciz "Xen"
  .align 4
  .long pvh_start
  .align 4

  .section .text.entry, "ax"
  .code32
  .globl _start
_start:
pvh_start:
  cli
  movl %esi, payload_entry_state + ES_RSI
  movl %ebx, payload_entry_state + ES_RBX
  movl %esp, payload_entry_state + ES_RSP
  movl %ebp, payload_entry_state + ES_RBP
  movl %cr0, %eax
  movl %eax, payload_entry_state + ES_CR0
  movl %cr4, %eax
  movl %eax, payload_entry_state + ES_CR4
  movl $0xc0000080, %ecx
  rdmsr
  movl %eax, payload_entry_state + ES_EFER
  movw %cs, payload_entry_state + ES_CS
  movw %ds, payload_entry_state + ES_DS
  movw %ss, payload_entry_state + ES_SS
  movl $1, payload_entry_state + ES_PVH

  movl $paging_pml4, %eax
  movl %eax, %cr3
  movl %cr4, %eax
  orl $0x20, %eax           /* PAE */
  movl %eax, %cr4
  movl $0xc0000080, %ecx
  rdmsr
  orl $0x100, %eax          /* EFER.LME */
  wrmsr
  movl %cr0, %eax
  orl $0x80000001, %eax     /* PG | PE */
  movl %eax, %cr0
  lgdt pvh_gdt_desc
  ljmp $0x08, $pvh_long

  .code64
pvh_long:
  movw $0x10, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %ss
  leaq payload_stack_top(%rip), %rsp
  xorl %ebp, %ebp
  call payload_main
  call payload_pass
1:
  hlt
  jmp 1b

  .section .rodata
  .align 8
pvh_gdt:
  .quad 0
  .quad 0x00af9a000000ffff  /* 64-bit code */
  .quad 0x00cf92000000ffff  /* data */
pvh_gdt_desc:
  .word pvh_gdt_desc - pvh_gdt - 1
  .long pvh_gdt

  .section .bss
  .align 16
payload_stack:
  .skip 65536
  .globl payload_stack_top
payload_stack_top:
