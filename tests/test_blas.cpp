// The warning that OpenBLAS runs kernels below the processor's vector instructions
// (linalg::blas_kernel_warning): when it is given, what it says, and the processor's level against
// the kernel's own report in /proc/cpuinfo.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "linalg/blas_lapack.hpp"

namespace lrsmeta::linalg {
namespace {

const std::string kDebian12 = "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64";

TEST(BlasKernels, GenericKernelsOnANewerProcessorNameTheSettingThatFixesThem) {
  const std::string avx512 = blas_kernel_warning(kDebian12, "Prescott", 3);
  EXPECT_NE(avx512.find("OpenBLAS 0.3.21 runs its Prescott kernels"), std::string::npos) << avx512;
  EXPECT_NE(avx512.find("AVX-512"), std::string::npos) << avx512;
  EXPECT_NE(avx512.find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << avx512;
  EXPECT_EQ(avx512.find('\n'), std::string::npos);  // one line
  const std::string avx2 = blas_kernel_warning(kDebian12, "Prescott", 2);
  EXPECT_NE(avx2.find("OPENBLAS_CORETYPE=Haswell"), std::string::npos) << avx2;
  // AVX2 kernels on an AVX-512 processor: the small-matrix kernels the task step calls are
  // SkylakeX's.
  EXPECT_NE(blas_kernel_warning(kDebian12, "Haswell", 3).find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos);
  EXPECT_NE(blas_kernel_warning(kDebian12, "Sandybridge", 2).find("OPENBLAS_CORETYPE=Haswell"), std::string::npos);
}

TEST(BlasKernels, NoWarningWhereTheKernelsMatchOrNothingCanChangeThem) {
  EXPECT_EQ(blas_kernel_warning(kDebian12, "SkylakeX", 3), "");
  EXPECT_EQ(blas_kernel_warning(kDebian12, "sapphirerapids", 3), "");
  EXPECT_EQ(blas_kernel_warning(kDebian12, "Haswell", 2), "");
  EXPECT_EQ(blas_kernel_warning(kDebian12, "Zen", 2), "");
  EXPECT_EQ(blas_kernel_warning(kDebian12, "SkylakeX", 2), "");  // OPENBLAS_CORETYPE set above the processor: its choice
  // A processor without AVX2 gains nothing worth a warning.
  EXPECT_EQ(blas_kernel_warning(kDebian12, "Prescott", 1), "");
  EXPECT_EQ(blas_kernel_warning(kDebian12, "Prescott", 0), "");
  // Built for one processor (no DYNAMIC_ARCH): OPENBLAS_CORETYPE is ignored there.
  EXPECT_EQ(blas_kernel_warning("OpenBLAS 0.3.21 NO_AFFINITY Prescott MAX_THREADS=64", "Prescott", 3), "");
}

TEST(BlasKernels, KernelSetsHaveTheirVectorLevels) {
  EXPECT_EQ(blas_core_vector_level("Prescott"), 0);
  EXPECT_EQ(blas_core_vector_level("Nehalem"), 0);
  EXPECT_EQ(blas_core_vector_level("Sandybridge"), 1);
  EXPECT_EQ(blas_core_vector_level("Haswell"), 2);
  EXPECT_EQ(blas_core_vector_level("ZEN"), 2);
  EXPECT_EQ(blas_core_vector_level("SkylakeX"), 3);
  EXPECT_EQ(blas_core_vector_level("Cooperlake"), 3);
  EXPECT_EQ(blas_core_vector_level("an unknown name"), 0);
}

// The processor's level from the flags Linux reports, independently of the compiler's cpuid.
TEST(BlasKernels, TheProcessorsLevelIsWhatLinuxReports) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;) flags.insert(w);
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  int expected = 0;
  if (flags.count("avx512f") && flags.count("avx512bw") && flags.count("avx512dq") && flags.count("avx512vl")) expected = 3;
  else if (flags.count("avx2") && flags.count("fma")) expected = 2;
  else if (flags.count("avx")) expected = 1;
  EXPECT_EQ(processor_vector_level(), expected);
}

}  // namespace
}  // namespace lrsmeta::linalg
