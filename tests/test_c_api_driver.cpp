// Runs the plain-C checks of test_c_api.c under GoogleTest.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

extern "C" int c_api_train_predict_save_load(const char* folder, char* message, size_t size);

TEST(CApi, TrainPredictSaveLoadAndErrors) {
  const std::filesystem::path folder = std::filesystem::temp_directory_path() / ("lrsmeta_capi_" + std::to_string(::getpid()));
  std::filesystem::remove_all(folder);
  char message[512] = "";
  const int rc = c_api_train_predict_save_load(folder.c_str(), message, sizeof message);
  std::filesystem::remove_all(folder);
  EXPECT_EQ(rc, 0) << message;
}
