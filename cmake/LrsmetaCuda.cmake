# The CUDA backend is optional: lrsmeta configures, builds and passes its tests without the CUDA
# toolkit. LRSMETA_CUDA=AUTO uses the toolkit when one is found; ON requires it; OFF ignores it.
set(LRSMETA_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE LRSMETA_CUDA PROPERTY STRINGS AUTO ON OFF)
set(LRSMETA_WITH_CUDA OFF)
set(LRSMETA_CUDA_SOURCES "")
set(LRSMETA_CUDA_LIBRARIES "")
# The CUDA backend (issue: the GPU path) lands its sources in kernels/ and the list below; until it
# does, every build uses the stub in host/cuda_unavailable.cpp and LRSMETA_CUDA=ON is an error.
file(GLOB _lrsmeta_cuda_sources "${CMAKE_CURRENT_SOURCE_DIR}/kernels/*.cu")
if(LRSMETA_CUDA STREQUAL "ON" AND NOT _lrsmeta_cuda_sources)
  message(FATAL_ERROR "LRSMETA_CUDA=ON, but this version of lrsmeta has no CUDA backend yet")
endif()
message(STATUS "lrsmeta: CUDA backend ${LRSMETA_WITH_CUDA}")
