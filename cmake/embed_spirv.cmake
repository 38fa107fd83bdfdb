# Writes SPIR-V file SPV as a C array of 32-bit words named shader_NAME_code,
# so pCode is aligned as Vulkan requires. Run with cmake -P.
file(READ ${SPV} hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR rem "${nhex} % 8")
if(nhex EQUAL 0 OR NOT rem EQUAL 0)
    message(FATAL_ERROR "${SPV}: not a whole number of 32-bit words")
endif()
# little-endian bytes b0 b1 b2 b3 -> word 0xb3b2b1b0
string(REGEX REPLACE "([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])"
       "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "(0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,)"
       "\\1\n    " words "${words}")
math(EXPR nbytes "${nhex} / 2")
file(WRITE ${OUT} "/* Generated from ${NAME}.spv by cmake/embed_spirv.cmake. */
#include <stddef.h>
#include <stdint.h>
const uint32_t shader_${NAME}_code[] = {
    ${words}
};
const size_t shader_${NAME}_size = ${nbytes};
")
