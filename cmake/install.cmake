# `cmake --install`: the kiln compiler, libkiln_rt (+ its CUDA plugin when built), the
# headers a host and generated code need, model_entry.c (compiled into every model.so),
# a CMake package (find_package(kiln) -> kiln::runtime, kiln::kiln) and kiln.pc.
# The Python package (another component) installs into its own directory beside these.
include(CMakePackageConfigHelpers)
file(STRINGS ${PROJECT_SOURCE_DIR}/include/kiln/model.h kiln_abi_line
     REGEX "^#define KILN_ABI_VERSION [0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" KILN_ABI_VERSION "${kiln_abi_line}")

set(KILN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/kiln CACHE STRING
    "where kilnConfig.cmake is installed (relative to the prefix)")

if(NOT KILN_PREBUILT_CLI) # a tree that imports its kiln (src/CMakeLists.txt) installs none
  install(TARGETS kiln RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(TARGETS kiln_rt LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET kiln_rt_cuda)
  install(TARGETS kiln_rt_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kiln DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${KILN_MODEL_ENTRY_SOURCE} DESTINATION ${CMAKE_INSTALL_DATADIR}/kiln)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/kilnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kilnConfig.cmake
  INSTALL_DESTINATION ${KILN_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kilnConfig.cmake ${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
        DESTINATION ${KILN_INSTALL_CMAKEDIR})

# kiln.pc: prefix-relative so a moved prefix still works with PKG_CONFIG_PATH.
file(RELATIVE_PATH KILN_PC_PREFIX_FROM_PCDIR
     /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
configure_file(${CMAKE_CURRENT_LIST_DIR}/kiln.pc.in ${PROJECT_BINARY_DIR}/kiln.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kiln.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
