// dataset.json: what a data folder written by convert_csv knows beyond its arrays (the task keys,
// the feature names and the CSV encoding), read back by the folder loaders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::io {

// Fills the three from `folder`/dataset.json when the folder has one (else leaves them as they
// are); checks them against the folder's t tasks and d features.
void read_dataset_description(const std::string& folder, std::int64_t t, std::int64_t d, std::vector<std::string>* task_keys,
                              std::vector<std::string>* feature_names, FeatureEncoding* encoding);

}  // namespace lrsmeta::io
