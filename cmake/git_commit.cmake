# Writes OUT, a header defining CRMSYNC_GIT_COMMIT, at build time, and touches it only when the
# value changes (so a new commit recompiles one file). A source tree without git (a release
# tarball) may pass the commit in the CRMSYNC_GIT_COMMIT environment variable.
if(DEFINED ENV{CRMSYNC_GIT_COMMIT} AND NOT "$ENV{CRMSYNC_GIT_COMMIT}" STREQUAL "")
  set(commit "$ENV{CRMSYNC_GIT_COMMIT}")
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE rc ERROR_QUIET)
  if(NOT rc EQUAL 0 OR commit STREQUAL "")
    set(commit "unknown")
  else()
    execute_process(COMMAND git -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND NOT changes STREQUAL "")
      string(APPEND commit "-modified")
    endif()
  endif()
endif()
file(WRITE "${OUT}.tmp" "#pragma once\n#define CRMSYNC_GIT_COMMIT \"${commit}\"\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
