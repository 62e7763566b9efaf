// Model folders written over many processes: rank 0 writes the files, every process's (w, b)
// streamed to it in rank order.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/files.hpp"
#include "io/model_files.hpp"
#include "io/npy_stream.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {

namespace {
// Rank 0 appends every process's `local` elements, in rank order, to `writer` (null elsewhere);
// pieces arrive cut anywhere, so bytes wait in `pending` until an element is whole. After a
// failure rank 0 keeps receiving (the others must finish sending) and writes nothing more.
template <typename T>
void stream_array(Communicator& comm, const std::vector<T>& local, io::NpyStreamWriter* writer, std::string& failure) {
  std::string pending;
  comm.stream_to_root(reinterpret_cast<const char*>(local.data()), local.size() * sizeof(T),
                      [&](int, const char* piece, std::size_t size) {
                        if (!failure.empty()) return;
                        try {
                          pending.append(piece, size);
                          const std::size_t whole = pending.size() / sizeof(T);
                          if (whole == 0) return;
                          std::vector<T> values(whole);
                          std::memcpy(values.data(), pending.data(), whole * sizeof(T));
                          writer->append(values.data(), static_cast<std::int64_t>(whole));
                          pending.erase(0, whole * sizeof(T));
                        } catch (const std::exception& e) {
                          failure = e.what();
                        }
                      });
}
}  // namespace

void write_npy(const std::string& path, const std::vector<double>& local, Communicator& comm) {
  std::int64_t total = static_cast<std::int64_t>(local.size());
  comm.sum(&total, 1);
  std::string failure;
  const std::string tmp = comm.rank() == 0 ? io::temporary_sibling(path) : std::string();
  std::unique_ptr<io::NpyStreamWriter> writer;
  if (comm.rank() == 0) {
    try {
      writer = std::make_unique<io::NpyStreamWriter>(tmp, DType::f64, std::vector<std::int64_t>{total});
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  stream_array(comm, local, writer.get(), failure);
  if (comm.rank() == 0) {
    try {
      if (failure.empty()) {
        writer->finish();
        writer.reset();
        if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": cannot rename into place (" + std::strerror(errno) + ")");
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    writer.reset();
    if (!failure.empty()) std::remove(tmp.c_str());
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
}

void write_text_file(const std::string& path, const std::string& local, Communicator& comm) {
  std::string failure;
  const std::string tmp = comm.rank() == 0 ? io::temporary_sibling(path) : std::string();
  std::ofstream out;
  if (comm.rank() == 0) {
    out.open(tmp, std::ios::binary | std::ios::trunc);
    if (!out) failure = path + ": cannot open for writing (" + std::strerror(errno) + ")";
  }
  comm.stream_to_root(local.data(), local.size(), [&](int, const char* piece, std::size_t size) {
    if (failure.empty() && !out.write(piece, static_cast<std::streamsize>(size))) failure = path + ": write failed (disk full?)";
  });
  if (comm.rank() == 0) {
    out.close();
    if (failure.empty() && !out) failure = path + ": write failed (disk full?)";
    if (failure.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
      failure = path + ": cannot rename into place (" + std::strerror(errno) + ")";
    if (!failure.empty()) std::remove(tmp.c_str());
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
}

namespace io {
std::vector<std::string> write_model_files(const Model& model, const std::string& folder, Communicator& comm) {
  std::string failure;
  try {
    model.validate();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  std::int64_t t_all = model.t;
  comm.sum(&t_all, 1);
  // The task keys, length-prefixed (a key may hold any byte), where the data had them.
  std::string keys;
  for (const std::string& key : model.task_keys) {
    const std::uint64_t length = key.size();
    keys.append(reinterpret_cast<const char*>(&length), sizeof length);
    keys += key;
  }
  const bool root = comm.rank() == 0;
  const fs::path dir(folder);
  std::vector<std::string> names;
  std::vector<std::string> all_keys;
  std::unique_ptr<NpyStreamWriter> writer;
  auto open = [&](const char* name, DType dtype, std::int64_t columns) {
    writer.reset();
    if (!root || !failure.empty()) return;
    try {
      writer = std::make_unique<NpyStreamWriter>((dir / name).string(), dtype, std::vector<std::int64_t>{t_all, columns});
      names.push_back(name);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  auto close = [&] {
    if (!writer || !failure.empty()) return;
    try {
      writer->finish();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  open("W.npy", DType::f64, model.r);
  stream_array(comm, model.W, writer.get(), failure);
  close();
  open("B_index.npy", DType::i32, model.k);
  stream_array(comm, model.B_index, writer.get(), failure);
  close();
  open("B_value.npy", DType::f64, model.k);
  stream_array(comm, model.B_value, writer.get(), failure);
  close();
  writer.reset();
  std::string pending;
  comm.stream_to_root(keys.data(), keys.size(), [&](int, const char* piece, std::size_t size) {
    pending.append(piece, size);
    while (pending.size() >= sizeof(std::uint64_t)) {
      std::uint64_t length = 0;
      std::memcpy(&length, pending.data(), sizeof length);
      if (pending.size() < sizeof length + length) break;
      all_keys.push_back(pending.substr(sizeof length, length));
      pending.erase(0, sizeof length + length);
    }
  });
  if (root && failure.empty()) {
    try {
      if (!all_keys.empty() && static_cast<std::int64_t>(all_keys.size()) != t_all)
        throw Error("save_model: some processes' tasks have keys and some do not");
      Model header = model;  // U, the prior, the history: the same on every process
      header.t = t_all;
      header.task_keys = std::move(all_keys);
      write_shared_model_files(header, dir, names);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  return names;
}
}  // namespace io

void save_model(const Model& model, const std::string& path, Communicator& comm) {
  const bool root = comm.rank() == 0;
  std::string failure;
  const std::string staged = root ? io::temporary_sibling(path) : std::string();
  if (root) {
    std::error_code ec;
    fs::create_directories(staged, ec);
    if (ec) failure = path + ": cannot create a folder beside it (" + ec.message() + ")";
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  auto remove_staged = [&] {
    std::error_code ec;
    if (root) fs::remove_all(staged, ec);
  };
  try {
    io::write_model_files(model, staged, comm);
  } catch (...) {
    remove_staged();
    throw;
  }
  if (root) {
    try {
      io::install_folder(staged, path, "model.json");
    } catch (const std::exception& e) {
      failure = e.what();
      remove_staged();
    }
  }
  const std::string installed = comm.first_error(failure);
  if (!installed.empty()) throw CollectiveError(installed);
}

}  // namespace lrsmeta
