// SIGINT and SIGTERM as a request to stop cleanly: while a guard lives, the signals set a flag
// that long-running commands poll (between tasks, between iterations) so that they can remove
// what they staged and exit with one line, instead of dying with a half-written folder.
#pragma once

#include <stdexcept>
#include <string>

namespace lrsmeta::cli {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the handlers (and clears the flag)
  ~InterruptGuard();  // restores the previous handlers
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// What a command throws when it stopped on a signal: main exits with 128 + the signal's number.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(const std::string& what, int signal) : std::runtime_error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

// The signal's name for messages ("SIGINT", "SIGTERM").
const char* signal_name(int signal);

// Whether SIGINT or SIGTERM arrived while a guard was installed, and which (0: none).
bool interrupt_requested();
int interrupt_signal();

}  // namespace lrsmeta::cli
