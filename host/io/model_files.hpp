// The pieces of a model folder that the checkpoint writer shares with save_model and load_model.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_fields.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::io {

// Options as model.json records them (the settings a fit ran with), and back.
nlohmann::json options_json(const Options& options);
Options options_from_json(const JsonFields& j);

// A CSV feature encoding as model.json (and a converted data folder's dataset.json) records it.
nlohmann::json encoding_json(const FeatureEncoding& encoding);
FeatureEncoding encoding_from_json(const JsonFields& j);

// The files of a model that are not per task: U.npy, beta.npy and Sigma.npy with a prior, and
// model.json (written last); their names are added to `names`.
void write_shared_model_files(const Model& model, const std::filesystem::path& dir, std::vector<std::string>& names);

// Write U.npy, W.npy, B_index.npy, B_value.npy (beta.npy, Sigma.npy with a prior) and model.json
// into the existing folder `folder`; returns the names written.
std::vector<std::string> write_model_files(const Model& model, const std::string& folder);
// Over many processes (collective): rank 0 writes the model files into `folder` (existing on rank
// 0), every process's (w, b) streamed to it in rank order; returns the names written on rank 0.
// A failure anywhere throws CollectiveError on every process.
std::vector<std::string> write_model_files(const Model& model, const std::string& folder, Communicator& communicator);

}  // namespace lrsmeta::io
