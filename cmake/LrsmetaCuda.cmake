# The CUDA backend is optional: lrsmeta configures, builds and passes its tests without the CUDA
# toolkit, and with it on a machine without a GPU (the GPU tests then skip). LRSMETA_CUDA=AUTO uses
# the toolkit when CMake finds nvcc; ON requires it; OFF ignores it.
set(LRSMETA_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE LRSMETA_CUDA PROPERTY STRINGS AUTO ON OFF)
set(LRSMETA_WITH_CUDA OFF)
set(LRSMETA_CUDA_SOURCES "")
set(LRSMETA_CUDA_LIBRARIES "")
if(NOT LRSMETA_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Hopper (sm_90, the H100/H200) always; add others with -DCMAKE_CUDA_ARCHITECTURES="80;90".
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(LRSMETA_WITH_CUDA ON)
    set(LRSMETA_CUDA_SOURCES
      ${CMAKE_CURRENT_SOURCE_DIR}/kernels/task_step.cu
      ${CMAKE_CURRENT_SOURCE_DIR}/kernels/normal_equations.cu
      ${CMAKE_CURRENT_SOURCE_DIR}/host/cuda/cuda_backend.cpp
      ${CMAKE_CURRENT_SOURCE_DIR}/host/cuda/device_direct_system.cpp
      ${CMAKE_CURRENT_SOURCE_DIR}/host/cuda/device_memory_plan.cpp
      ${CMAKE_CURRENT_SOURCE_DIR}/host/cuda/cuda_utils.cpp
      ${CMAKE_CURRENT_SOURCE_DIR}/host/cuda/row_moments.cpp)
    set(LRSMETA_CUDA_LIBRARIES CUDA::cudart CUDA::cublas CUDA::cusolver)
    # NCCL (shipped with the toolkit here): sums between GPUs on device buffers in a fit over many
    # processes, each on a GPU. Optional: without it such a fit sums through MPI on the host.
    # LRSMETA_NCCL=OFF leaves it out (scripts/device-check.sh: one GPU, and a machine that may lack it).
    set(LRSMETA_NCCL "AUTO" CACHE STRING "Use NCCL between GPUs: AUTO or OFF")
    set_property(CACHE LRSMETA_NCCL PROPERTY STRINGS AUTO OFF)
    if(NOT LRSMETA_NCCL MATCHES "^(AUTO|OFF)$")
      message(FATAL_ERROR "LRSMETA_NCCL=${LRSMETA_NCCL}: use AUTO (NCCL where found) or OFF")
    endif()
    set(LRSMETA_WITH_NCCL OFF)
    if(NOT LRSMETA_NCCL STREQUAL "OFF")
      find_path(LRSMETA_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
      find_library(LRSMETA_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib)
    endif()
    if(LRSMETA_NCCL_INCLUDE_DIR AND LRSMETA_NCCL_LIBRARY AND NOT LRSMETA_NCCL STREQUAL "OFF")
      set(LRSMETA_WITH_NCCL ON)
      list(APPEND LRSMETA_CUDA_LIBRARIES ${LRSMETA_NCCL_LIBRARY})
    endif()
    message(STATUS "lrsmeta: NCCL ${LRSMETA_WITH_NCCL} (${LRSMETA_NCCL_LIBRARY})")
  elseif(LRSMETA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LRSMETA_CUDA=ON, but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()
message(STATUS "lrsmeta: CUDA backend ${LRSMETA_WITH_CUDA} (architectures: ${CMAKE_CUDA_ARCHITECTURES})")
