# Generate a table of every struct field's offset and size in the FFI part
# of bindings/tl_abi.h, as the C compiler lays them out.  A spec compares
# it with ffi.offsetof/ffi.sizeof, so a declaration LuaJIT reads
# differently from the compiler cannot go unnoticed.
# Input: SRC (the header), DST (the .c file to write).
file(READ "${SRC}" text)
string(FIND "${text}" "/* FFI-BEGIN */" begin)
string(FIND "${text}" "/* FFI-END */" end)
math(EXPR len "${end} - ${begin}")
string(SUBSTRING "${text}" ${begin} ${len} body)
string(REPLACE ";" "," body "${body}")
string(REPLACE "\n" ";" lines "${body}")

set(out "/* Generated from bindings/tl_abi.h by cmake/embed_layout.cmake. */\n")
string(APPEND out "#include <stddef.h>\n#include \"tl_abi.h\"\n\n")
string(APPEND out "const struct tl_layout_entry tl_abi_layout[] = {\n")
set(current "")
foreach(line IN LISTS lines)
  if(line MATCHES "^struct (tl_[a-z_]+) {")
    set(current "${CMAKE_MATCH_1}")
    string(APPEND out "\t{ \"${current}\", \"\", 0, sizeof(struct ${current}) },\n")
  elseif(current AND line MATCHES "^}")
    set(current "")
  elseif(current)
    string(REGEX REPLACE "/\\*.*" "" code "${line}")
    if(code MATCHES "[ \t*]([a-z_0-9]+)(\\[[^]]*\\])?,[ \t]*$")
      set(f "${CMAKE_MATCH_1}")
      string(APPEND out "\t{ \"${current}\", \"${f}\", offsetof(struct ${current}, ${f}), sizeof(((struct ${current} *)0)->${f}) },\n")
    endif()
  endif()
endforeach()
string(APPEND out "\t{ 0, 0, 0, 0 }\n};\n")
file(WRITE "${DST}.tmp" "${out}")
file(COPY_FILE "${DST}.tmp" "${DST}" ONLY_IF_DIFFERENT)
