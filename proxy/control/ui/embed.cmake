# Writes OUTPUT, a C++ source defining arbiter::ui_asset (proxy/control/ui_assets.h) over the
# files named in FILES (file names in UI_DIR), each as a byte array. Run at build time by the
# custom command in CMakeLists.txt, so an edit of a page file rebuilds only this source.
set(text "// Generated from ${UI_DIR} by proxy/control/ui/embed.cmake: do not edit.\n")
string(APPEND text "#include \"proxy/control/ui_assets.h\"\n\nnamespace arbiter {\n\nnamespace {\n\n")
set(lookup "")
set(index 0)
foreach(name IN LISTS FILES)
  file(READ "${UI_DIR}/${name}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # A trailing 0 so that an empty file still makes a valid array.
  string(APPEND text "// ${name}\nconstexpr unsigned char kUiAsset${index}[] = {\n${bytes}0};\n\n")
  string(APPEND lookup "  if (name == \"${name}\") return std::string_view(reinterpret_cast<const char*>(kUiAsset${index}), sizeof kUiAsset${index} - 1);\n")
  math(EXPR index "${index} + 1")
endforeach()
string(APPEND text "}  // namespace\n\nstd::optional<std::string_view> ui_asset(std::string_view name) noexcept {\n${lookup}  return std::nullopt;\n}\n\n}  // namespace arbiter\n")
file(WRITE "${OUTPUT}.tmp" "${text}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
