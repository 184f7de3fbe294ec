# kiln_fake_cuda_model: the hand-written CUDA model.so (fake_cuda_model.c + model_entry.c) with
# its kernel fatbin built by nvcc (sm_90 SASS + compute_90 PTX). Needs CUDAToolkit found.
if(TARGET kiln_fake_cuda_model)
  return()
endif()
find_package(CUDAToolkit REQUIRED)
set(_fcm_dir ${PROJECT_SOURCE_DIR}/tests/gpu/fake_cuda_model)
set(_fcm_out ${PROJECT_BINARY_DIR}/tests/gpu/fake_cuda_model)
file(MAKE_DIRECTORY ${_fcm_out})
add_custom_command(
  OUTPUT ${_fcm_out}/scale_add.fatbin ${_fcm_out}/fatbin_size.h
  COMMAND ${CUDAToolkit_NVCC_EXECUTABLE} -fatbin
          "-gencode=arch=compute_90,code=[sm_90,compute_90]" -o ${_fcm_out}/scale_add.fatbin
          ${_fcm_dir}/scale_add.cu
  COMMAND ${CMAKE_COMMAND} -DFATBIN=${_fcm_out}/scale_add.fatbin -DOUT=${_fcm_out}/fatbin_size.h
          -P ${_fcm_dir}/fatbin_size.cmake
  DEPENDS ${_fcm_dir}/scale_add.cu ${_fcm_dir}/fatbin_size.cmake
  COMMENT "nvcc: fake CUDA model fatbin")
add_library(kiln_fake_cuda_model SHARED ${_fcm_dir}/fake_cuda_model.c ${KILN_MODEL_ENTRY_SOURCE}
                                        ${_fcm_out}/fatbin_size.h)
target_include_directories(kiln_fake_cuda_model PRIVATE ${_fcm_out})
target_compile_definitions(kiln_fake_cuda_model PRIVATE
  KILN_FAKE_FATBIN_PATH="${_fcm_out}/scale_add.fatbin")
set_source_files_properties(${_fcm_dir}/fake_cuda_model.c PROPERTIES
  OBJECT_DEPENDS ${_fcm_out}/scale_add.fatbin)
target_link_libraries(kiln_fake_cuda_model PRIVATE kiln_rt)
# Like a generated model.so: -z now, so a missing libkiln_rt symbol would fail in dlopen.
target_link_options(kiln_fake_cuda_model PRIVATE -Wl,-z,now)
set_target_properties(kiln_fake_cuda_model PROPERTIES C_VISIBILITY_PRESET hidden C_STANDARD 99
                                                      C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(kiln_fake_cuda_model PRIVATE -Wall -Werror)
