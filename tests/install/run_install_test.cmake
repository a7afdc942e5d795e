# Runs as `cmake -P` from CTest (see CMakeLists.txt next to this file):
#   1. cmake --install CLAMS_BUILD_DIR --prefix WORK_DIR/prefix
#   2. configure and build CONSUMER_SOURCE_DIR with CMAKE_PREFIX_PATH=WORK_DIR/prefix only
#   3. run the consumer app on a small MMIF and check the view it adds
foreach(var CLAMS_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CXX_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "run_install_test.cmake: ${var} is not set")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

run_step("cmake --install" ${CMAKE_COMMAND} --install "${CLAMS_BUILD_DIR}" --prefix "${prefix}")
foreach(installed include/clams/app/app.h include/clams/server/serve.h bin/clams
    share/clams/clams_worker.py)
  if(NOT EXISTS "${prefix}/${installed}")
    message(FATAL_ERROR "the install has no ${installed}")
  endif()
endforeach()
file(GLOB_RECURSE config_files "${prefix}/*/clamsConfig.cmake")
if(NOT config_files)
  message(FATAL_ERROR "the install has no clamsConfig.cmake")
endif()

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
if(CMAKE_GENERATOR)
  list(APPEND configure_args -G "${CMAKE_GENERATOR}")
endif()
if(CMAKE_MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
endif()
if(CXX_COMPILER_LAUNCHER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()
run_step("configuring the consumer project" ${CMAKE_COMMAND} ${configure_args})
run_step("building the consumer project" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")

# The app, run as a batch annotator: an upper-cased copy of the TextDocument plus an Alignment.
file(WRITE "${WORK_DIR}/in.mmif" [=[{"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "td1", "text": {"@value": "hello, installed clams"}}}], "views": []}]=])
find_program(app NAMES upper PATHS "${WORK_DIR}/build" NO_DEFAULT_PATH REQUIRED)
run_step("running the consumer app" "${app}" annotate "${WORK_DIR}/in.mmif")
foreach(expected "HELLO, INSTALLED CLAMS" "http://apps.clams.ai/upper/v1.0" "/Alignment/")
  string(FIND "${step_output}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the consumer app's output lacks '${expected}':\n${step_output}")
  endif()
endforeach()
message(STATUS "find_package(clams) consumer: configured, built and ran against ${prefix}")
