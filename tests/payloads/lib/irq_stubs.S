/* Interrupt entry stubs for vectors 0x20-0x3f: save the caller-saved
 * registers, call irq_dispatch(vector) (irq.c), return with iretq.
 * The CPU aligns RSP to 16 bytes before pushing its 5-quadword frame, so
 * after 9 pushes the call below sees the ABI's alignment. */
  .section .text
  .code64

  .macro IRQ_STUB vec
  .globl irq_stub_\vec
irq_stub_\vec:
  pushq %rax
  pushq %rcx
  pushq %rdx
  pushq %rsi
  pushq %rdi
  pushq %r8
  pushq %r9
  pushq %r10
  pushq %r11
  movl $\vec, %edi
  call irq_dispatch
  popq %r11
  popq %r10
  popq %r9
  popq %r8
  popq %rdi
  popq %rsi
  popq %rdx
  popq %rcx
  popq %rax
  iretq
  .endm

  .irp vec, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
  IRQ_STUB \vec
  .endr

  .section .rodata
  .align 8
  .globl irq_stub_table
irq_stub_table:
  .irp vec, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
  .quad irq_stub_\vec
  .endr
