# ember_payload(<name> SOURCES <file.c|file.S>... [PVH] [UNCHECKED])
#
# Builds ${CMAKE_CURRENT_BINARY_DIR}/<name>.elf from the caller's sources plus
# the payload kit (tests/payloads/lib), linked at 1 MiB and entered through
# the 64-bit Linux boot protocol (or PVH with the PVH flag), and adds the
# target payload-<name>. Unless UNCHECKED, the image is disassembled at build
# time and rejected if it contains instructions the software KVM used in CI
# cannot emulate (SSE/AVX, x87, popcnt, int3, xsave/xrstor, cmpxchg16b,
# clac/stac, ...). Payloads are compiled with explicit flags, never with the
# project's (sanitizer) compile options.
set(EMBER_PAYLOAD_KIT_DIR ${CMAKE_CURRENT_LIST_DIR})
find_program(EMBER_OBJDUMP objdump REQUIRED)
# Payload flags are GCC's; use gcc whatever compiler the preset chose (the
# fuzz preset builds the project with clang).
find_program(EMBER_PAYLOAD_CC gcc REQUIRED)

set(EMBER_PAYLOAD_CFLAGS
  -O2 -std=gnu11 -Wall -Wextra -Werror
  -ffreestanding -nostdlib -fno-builtin -fno-pic -fno-pie -static
  -mgeneral-regs-only -mno-sse -mno-mmx -mno-red-zone -mno-80387
  -mno-popcnt -mno-lzcnt -mno-bmi -mno-bmi2 -mno-movbe -mno-avx
  -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables
  -fcf-protection=none -fno-tree-loop-distribute-patterns
  -I${EMBER_PAYLOAD_KIT_DIR}/lib)
set(EMBER_PAYLOAD_LDFLAGS
  -nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,-z,noexecstack
  -Wl,-T,${EMBER_PAYLOAD_KIT_DIR}/payload.ld)
set(EMBER_PAYLOAD_LIB
  ${EMBER_PAYLOAD_KIT_DIR}/lib/payload.c ${EMBER_PAYLOAD_KIT_DIR}/lib/paging.S
  ${EMBER_PAYLOAD_KIT_DIR}/lib/smp_trampoline.S ${EMBER_PAYLOAD_KIT_DIR}/lib/irq.c
  ${EMBER_PAYLOAD_KIT_DIR}/lib/irq_stubs.S)
file(GLOB EMBER_PAYLOAD_HEADERS ${EMBER_PAYLOAD_KIT_DIR}/lib/*.h ${EMBER_PAYLOAD_KIT_DIR}/lib/entry_common.S)

function(ember_payload name)
  cmake_parse_arguments(P "PVH;UNCHECKED" "" "SOURCES" ${ARGN})
  set(entry ${EMBER_PAYLOAD_KIT_DIR}/lib/crt0.S)
  if(P_PVH)
    set(entry ${EMBER_PAYLOAD_KIT_DIR}/lib/pvh_entry.S)
  endif()
  set(objects "")
  foreach(src IN LISTS P_SOURCES EMBER_PAYLOAD_LIB entry)
    get_filename_component(src ${src} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    get_filename_component(base ${src} NAME)
    set(obj ${CMAKE_CURRENT_BINARY_DIR}/obj/${name}/${base}.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/obj/${name}
      COMMAND ${EMBER_PAYLOAD_CC} ${EMBER_PAYLOAD_CFLAGS} -c ${src} -o ${obj}
      DEPENDS ${src} ${EMBER_PAYLOAD_HEADERS}
      COMMENT "Compiling payload ${name}: ${base}"
      VERBATIM)
    list(APPEND objects ${obj})
  endforeach()
  set(elf ${CMAKE_CURRENT_BINARY_DIR}/${name}.elf)
  add_custom_command(
    OUTPUT ${elf}
    COMMAND ${EMBER_PAYLOAD_CC} ${EMBER_PAYLOAD_LDFLAGS} ${objects} -o ${elf}
    DEPENDS ${objects} ${EMBER_PAYLOAD_KIT_DIR}/payload.ld
    COMMENT "Linking payload ${name}.elf"
    VERBATIM)
  set(outputs ${elf})
  if(NOT P_UNCHECKED)
    set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${name}.checked)
    add_custom_command(
      OUTPUT ${stamp}
      COMMAND ${CMAKE_COMMAND} -DOBJDUMP=${EMBER_OBJDUMP} -DPAYLOAD=${elf} -DSTAMP=${stamp}
              -P ${EMBER_PAYLOAD_KIT_DIR}/check_payload.cmake
      DEPENDS ${elf} ${EMBER_PAYLOAD_KIT_DIR}/check_payload.cmake
      COMMENT "Checking payload ${name}.elf for instructions KVM cannot emulate"
      VERBATIM)
    list(APPEND outputs ${stamp})
  endif()
  add_custom_target(payload-${name} DEPENDS ${outputs})
  if(TARGET payloads)
    add_dependencies(payloads payload-${name})
  endif()
endfunction()

