// Resuming a fit from a checkpoint: what must match, and the options it goes on with.
#include <string>
#include <vector>

#include "core/fitting.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

// Whether checkpoint c may be resumed by a fit whose checkpoints would say `header` (its data, the
// options asked, the number of processes); throws naming what differs.
void check_resume(const Checkpoint& c, const Checkpoint& h) {
  auto dims = [](const Checkpoint& x) {
    return "n = " + std::to_string(x.n) + ", d = " + std::to_string(x.d) + ", t = " + std::to_string(x.t) + ", " +
           (x.value_bytes == 4 ? "float" : "double");
  };
  if (c.n != h.n || c.d != h.d || c.t != h.t || c.value_bytes != h.value_bytes)
    throw Error("resume: the checkpoint was made on other data (" + dims(c) + "); this data has " + dims(h));
  if (c.processes != h.processes)
    throw Error("resume: the checkpoint was made by " + std::to_string(c.processes) + " process(es); resume it with as many (this run has " +
                std::to_string(h.processes) + ")");
  if (c.data_fingerprint != h.data_fingerprint)
    throw Error("resume: the checkpoint was made on other data (same sizes, different contents: its fingerprint differs)");
  Options theirs = c.asked, ours = h.asked;
  // Threads and the device may differ (the result then differs by rounding).
  theirs.threads = ours.threads = 0;
  theirs.device = ours.device = Device::cpu;
  const std::vector<std::string> differences = option_differences(theirs, ours);
  if (!differences.empty()) {
    std::string text;
    for (const std::string& x : differences) text += (text.empty() ? "" : "; ") + x;
    throw Error("resume: the checkpoint was made with other options (checkpoint against this run: " + text + ")");
  }
}

// The options a resumed fit runs with: those in effect when the checkpoint was made (after any
// choice), with this run's threads and device.
Options options_to_resume(const Checkpoint& c, const Options& asked) {
  Options options = c.model.options;
  options.threads = asked.threads;
  options.device = asked.device;
  return options;
}

}  // namespace lrsmeta
