# Writes OUT, a header defining SATEMU_BUILD_ID: the commit SOURCE_DIR is
# checked out at ("-dirty" with uncommitted changes), or "" outside a git
# checkout. Run at every build; the file is rewritten only when the id
# changes, so that an unchanged id recompiles nothing.
#   cmake -DSOURCE_DIR=... -DOUT=... -P build_id.cmake
set(id "")
find_program(SATEMU_GIT git)
if(SATEMU_GIT AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(
    COMMAND "${SATEMU_GIT}" -C "${SOURCE_DIR}" describe --always --dirty --abbrev=12
            --match=no-tag-is-named-like-this
    OUTPUT_VARIABLE id
    OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT id MATCHES "^[0-9a-f]+(-dirty)?$")
    set(id "")
  endif()
endif()
set(text "#define SATEMU_BUILD_ID \"${id}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
