# All sanitizer and fuzzer wiring lives here.
if(CLAMS_SANITIZE)
  if(CLAMS_BUILD_FUZZ)
    message(FATAL_ERROR "CLAMS_SANITIZE and CLAMS_BUILD_FUZZ are separate builds; the fuzz build adds its own sanitizers")
  endif()
  set(CLAMS_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${CLAMS_SANITIZER_FLAGS})
  add_link_options(${CLAMS_SANITIZER_FLAGS})
  # What a program linking the (instrumented) clams libraries needs; clams_add_library() puts it
  # on every library's link interface, so an installed sanitized package links as is.
  set(CLAMS_SANITIZER_LINK_FLAGS -fsanitize=address,undefined)
  add_compile_definitions(CLAMS_SANITIZED=1)
endif()

if(CLAMS_TSAN)
  if(CLAMS_SANITIZE OR CLAMS_BUILD_FUZZ)
    message(FATAL_ERROR "CLAMS_TSAN is a build of its own: ThreadSanitizer cannot be combined with CLAMS_SANITIZE (ASan) or CLAMS_BUILD_FUZZ")
  endif()
  set(CLAMS_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
  add_compile_options(${CLAMS_SANITIZER_FLAGS})
  add_link_options(${CLAMS_SANITIZER_FLAGS})
  set(CLAMS_SANITIZER_LINK_FLAGS -fsanitize=thread)
  # Timing-sensitive tests widen their bounds in sanitizer builds. Asio brackets every handler
  # call with std::atomic_thread_fence, which TSan does not model (GCC's -Wtsan); its scheduler's
  # mutex already orders a handler after its post, so the fences are left out of this build.
  add_compile_definitions(CLAMS_SANITIZED=1 CLAMS_TSAN=1 BOOST_ASIO_DISABLE_FENCED_BLOCK)
endif()

if(CLAMS_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CLAMS_BUILD_FUZZ needs clang (configure with CXX=clang++)")
  endif()
  # Instrument everything for coverage; the fuzz targets add -fsanitize=fuzzer at link time.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
