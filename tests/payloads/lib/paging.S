/* Identity page tables for [0, 4 GiB) with 2 MiB pages: the boot tables map
 * only the first 1 GiB, and the MMIO hole (0xC0000000+) is above it. */
  .section .data
  .align 4096
  .globl paging_pml4
paging_pml4:
  .quad paging_pdpt + 0x3
  .fill 511, 8, 0
paging_pdpt:
  .quad paging_pd + 0x3
  .quad paging_pd + 0x1000 + 0x3
  .quad paging_pd + 0x2000 + 0x3
  .quad paging_pd + 0x3000 + 0x3
  .fill 508, 8, 0
paging_pd:
  .set page, 0
  .rept 2048
  .quad (page << 21) | 0x83  /* present, writable, 2 MiB */
  .set page, page + 1
  .endr

  .section .text
  .code64
  .globl paging_map_4g
paging_map_4g:
  leaq paging_pml4(%rip), %rax
  movq %rax, %cr3
  ret

  .globl paging_4g_root
paging_4g_root:
  leaq paging_pml4(%rip), %rax
  ret
