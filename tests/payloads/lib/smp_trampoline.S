/* Application processor start-up code. The BSP copies [smp_trampoline_start,
 * smp_trampoline_end) to TRAMPOLINE_BASE, patches cr3/stack/entry, and sends
 * INIT + SIPI with vector TRAMPOLINE_BASE >> 12. The AP starts here in real
 * mode at CS = vector << 8, IP = 0, and climbs to long mode. Everything is
 * addressed relative to TRAMPOLINE_BASE because the copy runs there. */
#define TRAMPOLINE_BASE 0x30000
#define REL(sym) ((sym) - smp_trampoline_start)
#define ABS(sym) (TRAMPOLINE_BASE + REL(sym))

  .section .text
  .globl smp_trampoline_start, smp_trampoline_end
  .globl smp_trampoline_cr3, smp_trampoline_stack, smp_trampoline_entry
  .code16
smp_trampoline_start:
  cli
  movw %cs, %ax
  movw %ax, %ds
  lgdtl REL(tramp_gdt_desc)
  movl %cr0, %eax
  orl $1, %eax
  movl %eax, %cr0
  ljmpl $0x08, $ABS(tramp32)

  .code32
tramp32:
  movw $0x10, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %ss
  movl ABS(smp_trampoline_cr3), %eax
  movl %eax, %cr3
  movl %cr4, %eax
  orl $0x20, %eax           /* PAE */
  movl %eax, %cr4
  movl $0xc0000080, %ecx
  rdmsr
  orl $0x100, %eax          /* EFER.LME */
  wrmsr
  movl %cr0, %eax
  orl $0x80000000, %eax     /* PG */
  movl %eax, %cr0
  ljmp $0x18, $ABS(tramp64)

  .code64
tramp64:
  movq ABS(smp_trampoline_stack), %rsp
  movq ABS(smp_trampoline_entry), %rax
  xorl %ebp, %ebp
  call *%rax
1:
  cli
  hlt
  jmp 1b

  .align 8
tramp_gdt:
  .quad 0
  .quad 0x00cf9a000000ffff  /* 0x08: 32-bit code */
  .quad 0x00cf92000000ffff  /* 0x10: data */
  .quad 0x00af9a000000ffff  /* 0x18: 64-bit code */
tramp_gdt_desc:
  .word tramp_gdt_desc - tramp_gdt - 1
  .long ABS(tramp_gdt)
  .align 8
smp_trampoline_cr3:
  .long 0
  .align 8
smp_trampoline_stack:
  .quad 0
smp_trampoline_entry:
  .quad 0
smp_trampoline_end:
