# clams_add_library(NAME <module> SRCS ... [DEPS ...] [PRIVATE_DEPS ...])
#   Builds the library target clams_<module> with the alias clams::<module>,
#   public headers from include/, warnings on, exported for find_package(clams).
# clams_add_test(NAME <name> SRCS ... DEPS ... [LABELS ...])
#   A GoogleTest binary registered with CTest through gtest_discover_tests.

include(CheckCXXCompilerFlag)

# -Wno-missing-field-initializers: designated initializers that leave members at
# their default member initializers are the intended style for options structs.
set(CLAMS_WARNING_FLAGS -Wall -Wextra -Wnon-virtual-dtor -Wno-missing-field-initializers)
# Compiler-specific flags are added only where the compiler knows them: -Wshadow=local is
# GCC's (clang, used by the fuzz build, would warn "unknown warning option" on every file).
check_cxx_compiler_flag(-Wshadow=local CLAMS_HAVE_WSHADOW_LOCAL)
if(CLAMS_HAVE_WSHADOW_LOCAL)
  list(APPEND CLAMS_WARNING_FLAGS -Wshadow=local)
endif()
if(CLAMS_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC's manual: sanitizers raise the rate of false positives, most notably -Wmaybe-uninitialized
  # (under ASan GCC 12 flags libstdc++'s own std::regex automaton in every test using it).
  list(APPEND CLAMS_WARNING_FLAGS -Wno-maybe-uninitialized)
endif()
if(CLAMS_WERROR)
  list(APPEND CLAMS_WARNING_FLAGS -Werror)
endif()

set_property(GLOBAL PROPERTY CLAMS_EXPORTED_TARGETS "")

function(clams_set_warnings target)
  target_compile_options(${target} PRIVATE ${CLAMS_WARNING_FLAGS})
endfunction()

function(clams_add_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target clams_${ARG_NAME})
  add_library(${target} ${ARG_SRCS})
  add_library(clams::${ARG_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME clams_${ARG_NAME} EXPORT_NAME ${ARG_NAME})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  if(CLAMS_SANITIZER_LINK_FLAGS)
    target_link_options(${target} INTERFACE ${CLAMS_SANITIZER_LINK_FLAGS})
  endif()
  clams_set_warnings(${target})
  set_property(GLOBAL APPEND PROPERTY CLAMS_EXPORTED_TARGETS ${target})
endfunction()

function(clams_add_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} clams_testing GTest::gmock GTest::gtest_main)
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  clams_set_warnings(${ARG_NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
