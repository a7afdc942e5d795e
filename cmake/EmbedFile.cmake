# Turns a file of the repository into a C++ source that returns its bytes (cmake -P script, run
# by the build when the file changes). Used for the /status page (src/server/status_page.html).
#
#   cmake -DIN=page.html -DOUT=page.cc -DFUNCTION=clams::server::StatusPageHtml -DHEADER=server/status_page.h -P EmbedFile.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
string(REGEX MATCH "^(.*)::([A-Za-z0-9_]+)$" _ "${FUNCTION}")
set(namespace "${CMAKE_MATCH_1}")
set(name "${CMAKE_MATCH_2}")
get_filename_component(in_name "${IN}" NAME)
file(WRITE "${OUT}" "// Generated from ${in_name} by cmake/EmbedFile.cmake; do not edit.
#include \"${HEADER}\"

namespace ${namespace} {
namespace {
constexpr char kBytes[${size} + 1] = {
    ${bytes}'\\0'};
}  // namespace

std::string_view ${name}() { return std::string_view(kBytes, ${size}); }

}  // namespace ${namespace}
")
