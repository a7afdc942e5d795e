# clams_app_version(<target>)
#   Stamps an app executable with its version at build time: `git describe --tags --always`
#   of the app's source folder (the Python SDK's rule), read at every build, so the app's
#   identity (and the request classes that key its memory profiles) does not depend on the
#   directory it is started from. An app's own AppMetadata::app_version wins over the stamp,
#   and CLAMS_APP_VERSION in the environment over both (see docs/writing-an-app.md).
#   Installed with the SDK: find_package(clams) provides it too.
set(CLAMS_APP_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/ClamsAppVersionStamp.cmake")

function(clams_app_version target)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${target}_app_version.cc")
  add_custom_target(${target}_app_version_stamp
    COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR} -DOUTPUT=${out}
            -P ${CLAMS_APP_VERSION_SCRIPT}
    BYPRODUCTS ${out}
    COMMENT "Stamping ${target} with its git version"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
  add_dependencies(${target} ${target}_app_version_stamp)
endfunction()
