# The SDK as a CMake package: static libraries clams::<module> and clams::sdk, the public headers,
# clamsConfig.cmake (finds the libraries' own dependencies) and a version file; the include
# directory comes from each library's INSTALL_INTERFACE. Tested by tests/install/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

get_property(clams_targets GLOBAL PROPERTY CLAMS_EXPORTED_TARGETS)
install(TARGETS ${clams_targets} EXPORT clamsTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/clams DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT clamsTargets NAMESPACE clams:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clams)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/clamsConfig.cmake.in
  ${PROJECT_BINARY_DIR}/clamsConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clams)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/clamsConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/clamsConfig.cmake ${PROJECT_BINARY_DIR}/clamsConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/ClamsAppVersion.cmake ${PROJECT_SOURCE_DIR}/cmake/ClamsAppVersionStamp.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clams)
# The Python worker adapter of `clams serve app.py`, found by the clams executable at
# <prefix>/share/clams/clams_worker.py (relative to <prefix>/bin/clams).
install(FILES ${PROJECT_SOURCE_DIR}/python/clams_worker.py DESTINATION ${CMAKE_INSTALL_DATADIR}/clams)
