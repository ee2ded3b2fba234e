# Turn the FFI part of bindings/tl_abi.h into a C string, at build time.
# Input: SRC (the header), DST (the .c file to write).  The text between the
# FFI-BEGIN and FFI-END markers is what ffi.cdef sees, byte for byte.
file(READ "${SRC}" text)
string(FIND "${text}" "/* FFI-BEGIN */" begin)
string(FIND "${text}" "/* FFI-END */" end)
if(begin EQUAL -1 OR end EQUAL -1)
  message(FATAL_ERROR "${SRC}: FFI-BEGIN/FFI-END markers missing")
endif()
math(EXPR begin "${begin} + 15")
math(EXPR len "${end} - ${begin}")
string(SUBSTRING "${text}" ${begin} ${len} cdef)
string(REPLACE "\\" "\\\\" cdef "${cdef}")
string(REPLACE "\"" "\\\"" cdef "${cdef}")
string(REPLACE "\n" "\\n\"\n\"" cdef "${cdef}")
file(WRITE "${DST}.tmp"
  "/* Generated from bindings/tl_abi.h by cmake/embed_cdef.cmake. */\n"
  "const char tl_abi_cdef[] =\n\"${cdef}\";\n")
file(COPY_FILE "${DST}.tmp" "${DST}" ONLY_IF_DIFFERENT)
