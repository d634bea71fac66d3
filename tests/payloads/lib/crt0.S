/* 64-bit Linux boot protocol entry (boot.rst "64-bit Boot Protocol"): long
 * mode, paging on, RSI = zero page. Records the entry state, switches to the
 * payload's stack and calls payload_main(). */
#include "entry_common.S"

  .section .text.entry, "ax"
  .code64
  .globl _start
_start:
  cli
  movq %rsi, payload_entry_state + ES_RSI(%rip)
  movq %rbx, payload_entry_state + ES_RBX(%rip)
  movq %rsp, payload_entry_state + ES_RSP(%rip)
  movq %rbp, payload_entry_state + ES_RBP(%rip)
  pushfq
  popq %rax
  movq %rax, payload_entry_state + ES_RFLAGS(%rip)
  movq %cr0, %rax
  movq %rax, payload_entry_state + ES_CR0(%rip)
  movq %cr3, %rax
  movq %rax, payload_entry_state + ES_CR3(%rip)
  movq %cr4, %rax
  movq %rax, payload_entry_state + ES_CR4(%rip)
  movl $0xc0000080, %ecx
  rdmsr
  shlq $32, %rdx
  orq %rdx, %rax
  movq %rax, payload_entry_state + ES_EFER(%rip)
  movw %cs, payload_entry_state + ES_CS(%rip)
  movw %ds, payload_entry_state + ES_DS(%rip)
  movw %ss, payload_entry_state + ES_SS(%rip)
  leaq payload_stack_top(%rip), %rsp
  xorl %ebp, %ebp
  call payload_main
  call payload_pass
1:
  hlt
  jmp 1b

  .section .bss
  .align 16
  .globl payload_stack_top
payload_stack:
  .skip 65536
payload_stack_top:
