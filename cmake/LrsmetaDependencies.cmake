# Third-party dependencies, all from Debian packages (scripts/install-deps.sh installs them).
find_package(OpenMP REQUIRED)                 # tasks in parallel on the CPU path
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)  # GEMM for G, LAPACK for Cholesky/QR
find_package(nlohmann_json 3.10 REQUIRED)     # model.json and metrics
if(LRSMETA_BUILD_CLI)
  find_package(CLI11 REQUIRED)                # the command line
endif()
if(LRSMETA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(LRSMETA_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
