/* Instructions the KVM self-check needs, kept in assembly so the C side can
 * stay general-register-only. */
  .section .text
  .code64

  .globl kvm_check_enable_sse
kvm_check_enable_sse:
  movq %cr0, %rax
  andq $~0x4, %rax          /* CR0.EM = 0 */
  orq $0x2, %rax            /* CR0.MP = 1 */
  movq %rax, %cr0
  movq %cr4, %rax
  orq $0x600, %rax          /* CR4.OSFXSR | OSXMMEXCPT */
  movq %rax, %cr4
  ret

  .globl kvm_check_enable_xsave
kvm_check_enable_xsave:
  movq %cr4, %rax
  orq $0x40000, %rax        /* CR4.OSXSAVE */
  movq %rax, %cr4
  xorl %ecx, %ecx
  movl $3, %eax             /* XCR0 = x87 | SSE */
  xorl %edx, %edx
  xsetbv
  ret

  /* 40 + 2 computed in SSE registers: returns 42. */
  .globl kvm_check_sse
kvm_check_sse:
  movl $40, %eax
  cvtsi2sd %eax, %xmm0
  movl $2, %eax
  cvtsi2sd %eax, %xmm1
  addsd %xmm1, %xmm0
  mulsd %xmm1, %xmm1
  pxor %xmm2, %xmm2
  paddd %xmm2, %xmm1
  cvttsd2si %xmm0, %eax
  ret

  .globl kvm_check_popcnt
kvm_check_popcnt:
  popcnt %rdi, %rax
  ret

  .globl kvm_check_xsave
kvm_check_xsave:
  movl $3, %eax
  xorl %edx, %edx
  xsave (%rdi)
  xrstor (%rdi)
  ret
