# Build-time check of a payload: disassembles it and fails on instructions the
# software KVM used in CI cannot emulate (DESIGN.md "Testing on machines
# without hardware virtualisation"). Usage:
#   cmake -DOBJDUMP=objdump -DPAYLOAD=<elf> -DSTAMP=<file> -P check_payload.cmake
execute_process(
  COMMAND ${OBJDUMP} -d --no-show-raw-insn -M att ${PAYLOAD}
  OUTPUT_VARIABLE listing
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "objdump failed on ${PAYLOAD}")
endif()

# SSE/AVX registers and instruction families, bit-manipulation extensions,
# and system instructions KVM's emulator does not implement.
set(forbidden
  "%[xyz]mm[0-9]"
  "[ \t](popcnt|lzcnt|tzcnt|andn|bextr|blsi|blsr|blsmsk|bzhi|pdep|pext|rorx|sarx|shlx|shrx)"
  "[ \t]int3"
  "[ \t](xsave|xsaveopt|xsavec|xsaves|xrstor|xrstors|fxsave|fxsave64|fxrstor|fxrstor64)"
  "[ \t](cmpxchg16b|clac|stac|rdrand|rdseed|movbe|crc32|adcx|adox|endbr64|endbr32)"
  "[ \t](ldmxcsr|stmxcsr|vzeroupper|vzeroall|emms|femms)"
  "[ \t]f(ld|st|add|sub|mul|div|init|ninit|nstsw|nstcw|ldcw|xch|com)"
)
string(REPLACE "\n" ";" lines "${listing}")
set(bad "")
foreach(line IN LISTS lines)
  foreach(pattern IN LISTS forbidden)
    if(line MATCHES "${pattern}")
      string(APPEND bad "  ${line}\n")
      break()
    endif()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "payload ${PAYLOAD} contains instructions the software KVM cannot emulate:\n${bad}")
endif()
file(WRITE ${STAMP} "checked\n")
