#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tests/support/harness.h"

namespace harness {
namespace {

std::runtime_error system_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Splits what a pipe delivers into lines; a last line without '\n' is kept at EOF.
struct LineSplitter {
  std::string partial;

  void feed(const char* data, std::size_t length, std::vector<std::string>& lines) {
    partial.append(data, length);
    std::size_t start = 0;
    for (std::size_t newline; (newline = partial.find('\n', start)) != std::string::npos; start = newline + 1) {
      lines.emplace_back(partial, start, newline - start);
    }
    partial.erase(0, start);
  }
  void finish(std::vector<std::string>& lines) {
    if (!partial.empty()) lines.push_back(std::move(partial));
    partial.clear();
  }
};

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text.append(line).append("\n");
  return text;
}

// How each sanitizer starts a report; with -fno-sanitize-recover=all the process then exits.
constexpr std::array<std::string_view, 4> kSanitizerMarkers = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer", "runtime error:"};
constexpr std::size_t kMaxReportLines = 200;

}  // namespace

const char* stream_name(Stream stream) { return stream == Stream::Stdout ? "stdout" : "stderr"; }

ChildProcess::ChildProcess(std::string executable, std::vector<std::string> arguments, ChildEnvironment environment)
    : executable_(std::move(executable)),
      stops_gracefully_(executable_ == arbiter_binary() || executable_ == arbiter_test_handlers_binary() ||
                        executable_ == legacy_api_binary()) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed, because other threads may hold malloc's locks.
  std::vector<char*> argv;
  argv.push_back(executable_.data());
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);

  // A changed environment is built here too. LISTEN_PID's value is only known in the child,
  // which writes its pid into the room left for it.
  const std::size_t listen_count = environment.listen_fds.size();
  const bool own_environment = !environment.variables.empty() || listen_count > 0;
  std::vector<std::string> variables = std::move(environment.variables);
  if (listen_count > 0) {
    variables.push_back("LISTEN_FDS=" + std::to_string(listen_count));
    variables.push_back("LISTEN_PID=" + std::string(20, '\0'));
  }
  std::vector<std::string> environment_entries;
  const auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  for (char** entry = environ; own_environment && *entry; ++entry) {
    const auto replaced = [&](const std::string& variable) { return name_of(variable) == name_of(*entry); };
    if (std::none_of(variables.begin(), variables.end(), replaced)) environment_entries.emplace_back(*entry);
  }
  environment_entries.insert(environment_entries.end(), variables.begin(), variables.end());
  std::vector<char*> envp;
  for (auto& entry : environment_entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  char* listen_pid_digits = listen_count > 0 ? environment_entries.back().data() + std::strlen("LISTEN_PID=") : nullptr;
  std::vector<int> listen_fds_aside(listen_count, -1);

  int out[2], err[2], exec_report[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw system_error("pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) throw system_error("pipe");
  if (::pipe2(exec_report, O_CLOEXEC) != 0) throw system_error("pipe");
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ < 0) throw system_error("fork");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    // Ignored signals and the signal mask survive exec; the child should start clean.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &default_action, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (listen_count > 0) {
      // Sockets to fds 3, 4, ...: first all of them (and the exec report pipe) above that range,
      // so that none is overwritten before it has been moved; dup2 clears FD_CLOEXEC.
      const int first_free = 3 + static_cast<int>(listen_count);
      exec_report[1] = ::fcntl(exec_report[1], F_DUPFD_CLOEXEC, first_free);
      for (std::size_t i = 0; i < listen_count; ++i) {
        listen_fds_aside[i] = ::fcntl(environment.listen_fds[i], F_DUPFD_CLOEXEC, first_free);
      }
      for (std::size_t i = 0; i < listen_count; ++i) ::dup2(listen_fds_aside[i], 3 + static_cast<int>(i));
      char digits[20];
      int length = 0;
      for (pid_t pid = ::getpid(); pid > 0; pid /= 10) digits[length++] = static_cast<char>('0' + pid % 10);
      for (int i = 0; i < length; ++i) listen_pid_digits[i] = digits[length - 1 - i];
    }
    if (own_environment) {
      ::execve(executable_.c_str(), argv.data(), envp.data());
    } else {
      ::execv(executable_.c_str(), argv.data());
    }
    const int exec_errno = errno;
    [[maybe_unused]] const auto written = ::write(exec_report[1], &exec_errno, sizeof exec_errno);
    ::_exit(127);
  }

  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_report[1]);
  int exec_errno = 0;
  ssize_t reported;
  do {
    reported = ::read(exec_report[0], &exec_errno, sizeof exec_errno);
  } while (reported < 0 && errno == EINTR);
  ::close(exec_report[0]);
  if (reported == sizeof exec_errno) {
    ::close(out[0]);
    ::close(err[0]);
    ::waitpid(pid_, nullptr, 0);
    errno = exec_errno;
    throw system_error("cannot execute " + executable_);
  }

  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  reader_ = std::thread([this] { read_output(); });
}

ChildProcess::~ChildProcess() {
  std::string problem = stop_for_destruction();
  // The child is gone, so its pipes end, unless something it started still holds them: the
  // report a sanitizer writes at exit is read before the reader thread is stopped.
  wait_for_output_end(2s);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
  if (reader_.joinable()) reader_.join();
  close_fd(stdout_fd_);
  close_fd(stderr_fd_);
  close_fd(wake_fd_);
  if (auto report = sanitizer_report()) {
    ADD_FAILURE() << executable_ << " (pid " << pid_ << ") printed a sanitizer report"
                  << (problem.empty() ? "" : " and " + problem) << ":\n" << *report;
  } else if (!problem.empty()) {
    ADD_FAILURE() << executable_ << " (pid " << pid_ << ") " << problem << "\n" << output_summary();
  }
}

std::string ChildProcess::stop_for_destruction() {
  // A child that already exited was stopped by the test, which judges its exit status.
  if (!running()) return {};
  if (!stops_gracefully_) {
    kill_and_reap();
    return {};
  }
  ::kill(pid_, SIGTERM);
  std::optional<int> status = wait_exit(kGracefulStopWait);
  if (!status) {
    ::kill(pid_, SIGTERM);
    status = wait_exit(kForcedStopWait);
  }
  if (!status) {
    kill_and_reap();
    return "was still running " + std::to_string((kGracefulStopWait + kForcedStopWait).count()) +
           " ms after SIGTERM; killed with SIGKILL";
  }
  if (*status != 0) return "exited with status " + std::to_string(*status) + " after SIGTERM (expected 0)";
  return {};
}

std::optional<std::string> ChildProcess::sanitizer_report() const {
  std::lock_guard lock(mutex_);
  const auto has_marker = [](const std::string& line) {
    return std::any_of(kSanitizerMarkers.begin(), kSanitizerMarkers.end(),
                       [&](std::string_view marker) { return line.find(marker) != std::string::npos; });
  };
  const auto first = std::find_if(stderr_lines_.begin(), stderr_lines_.end(), has_marker);
  if (first == stderr_lines_.end()) return std::nullopt;
  const auto count = std::min<std::size_t>(kMaxReportLines, static_cast<std::size_t>(stderr_lines_.end() - first));
  return join_lines(std::vector<std::string>(first, first + static_cast<std::ptrdiff_t>(count)));
}

void ChildProcess::read_output() {
  LineSplitter stdout_splitter;
  LineSplitter stderr_splitter;
  std::array<pollfd, 3> fds = {pollfd{stdout_fd_, POLLIN, 0}, pollfd{stderr_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
  char buffer[16384];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      LineSplitter& splitter = i == 0 ? stdout_splitter : stderr_splitter;
      std::lock_guard lock(mutex_);
      std::vector<std::string>& lines = i == 0 ? stdout_lines_ : stderr_lines_;
      if (n > 0) {
        splitter.feed(buffer, static_cast<std::size_t>(n), lines);
      } else {
        splitter.finish(lines);
        fds[i].fd = -1;  // poll ignores negative descriptors
      }
      lines_changed_.notify_all();
    }
  }
  std::lock_guard lock(mutex_);
  stdout_splitter.finish(stdout_lines_);
  stderr_splitter.finish(stderr_lines_);
  output_ended_ = true;
  lines_changed_.notify_all();
}

std::optional<LineMatch> ChildProcess::wait_for_line(const std::regex& pattern, Milliseconds timeout,
                                                     LinePosition since) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  LinePosition scanned = since;
  const auto search = [&](Stream stream, const std::vector<std::string>& lines,
                          std::size_t& next) -> std::optional<LineMatch> {
    for (; next < lines.size(); ++next) {
      std::smatch match;
      if (std::regex_search(lines[next], match, pattern)) {
        LineMatch found{stream, lines[next], {}};
        for (const auto& group : match) found.groups.push_back(group.str());
        return found;
      }
    }
    return std::nullopt;
  };
  bool timed_out = false;
  while (true) {
    if (auto found = search(Stream::Stdout, stdout_lines_, scanned.stdout_lines)) return found;
    if (auto found = search(Stream::Stderr, stderr_lines_, scanned.stderr_lines)) return found;
    if (output_ended_ || timed_out) return std::nullopt;
    timed_out = lines_changed_.wait_until(lock, deadline) == std::cv_status::timeout;
  }
}

bool ChildProcess::wait_for_output_end(Milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return lines_changed_.wait_for(lock, timeout, [this] { return output_ended_; });
}

LinePosition ChildProcess::position() const {
  std::lock_guard lock(mutex_);
  return {stdout_lines_.size(), stderr_lines_.size()};
}

std::vector<std::string> ChildProcess::lines_stdout() const {
  std::lock_guard lock(mutex_);
  return stdout_lines_;
}

std::vector<std::string> ChildProcess::lines_stderr() const {
  std::lock_guard lock(mutex_);
  return stderr_lines_;
}

std::string ChildProcess::output_summary() const {
  std::lock_guard lock(mutex_);
  return executable_ + " stdout:\n" + join_lines(stdout_lines_) + executable_ + " stderr:\n" + join_lines(stderr_lines_);
}

bool ChildProcess::signal(int signal_number) const {
  return !exit_status_ && ::kill(pid_, signal_number) == 0;
}

std::optional<int> ChildProcess::wait_exit(Milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exit_status_) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_) {
      exit_status_ = decode_wait_status(status);
    } else if (reaped < 0 && errno != EINTR) {
      exit_status_ = -1;  // not our child any more; nothing left to wait for
    } else if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  return exit_status_;
}

bool ChildProcess::running() { return !wait_exit(0ms).has_value(); }

void ChildProcess::kill_and_reap() {
  if (exit_status_) return;
  ::kill(pid_, SIGKILL);
  // SIGKILL cannot be caught, so this wait ends.
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_status_ = decode_wait_status(status);
}

RunResult run_process(const std::string& executable, const std::vector<std::string>& arguments, Milliseconds timeout) {
  ChildProcess process(executable, arguments);
  RunResult result;
  result.exit_code = process.wait_exit(timeout);
  if (!result.exit_code) process.signal(SIGKILL);
  process.wait_exit(2s);
  // A descendant that inherited the pipes could hold them open; don't wait for it forever.
  process.wait_for_output_end(2s);
  result.stdout_text = join_lines(process.lines_stdout());
  result.stderr_text = join_lines(process.lines_stderr());
  return result;
}

TempFile::TempFile(std::string_view contents, std::string_view suffix) {
  std::string path_template = "/tmp/arbiter-test-XXXXXX" + std::string(suffix);
  const int fd = ::mkstemps(path_template.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw system_error("mkstemps");
  ::close(fd);
  path_ = std::move(path_template);
  replace(contents);
}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

TempFile::TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempFile& TempFile::operator=(TempFile&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) ::unlink(path_.c_str());
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

void TempFile::replace(std::string_view contents) const {
  const std::string aside = path_ + ".new";
  const int fd = ::open(aside.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw system_error("open " + aside);
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      throw system_error("write " + aside);
    }
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(aside.c_str(), path_.c_str()) != 0) throw system_error("rename " + aside);
}

TempFile write_temp_file(std::string_view contents, std::string_view suffix) { return TempFile(contents, suffix); }

long peak_rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace harness
