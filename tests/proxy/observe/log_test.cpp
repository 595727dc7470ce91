#include "proxy/observe/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include <unistd.h>

namespace arbiter {
namespace {

// The lines AccessLog writes, read back from a file target; `time` is what stood where the
// time goes (it changes every run), replaced by "TIME".
std::vector<std::string> logged_lines(const std::vector<AccessRecord>& records, AccessLogFormat format,
                                      const std::regex& time) {
  // A file of this process's own: ctest runs the tests of this file in parallel processes.
  static int calls = 0;
  const std::string path =
      ::testing::TempDir() + "arbiter_log_test." + std::to_string(getpid()) + "." + std::to_string(++calls) + ".log";
  std::remove(path.c_str());
  std::string error;
  AccessLogTarget target;
  target.set(AccessLogFile::open(path, error));
  EXPECT_EQ(error, "");
  AccessLog log(true, target);
  for (const AccessRecord& record : records) log.record(record, format);
  log.flush();
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::regex_replace(line, time, "TIME"));
  std::remove(path.c_str());
  return lines;
}

AccessRecord forwarded_record() {
  AccessRecord r;
  r.request_id = "9f3c2a7b-000123";
  r.client = "127.0.0.1";
  r.method = "GET";
  r.target = "/items/1?q=\"x y\"";
  r.protocol = "HTTP/1.1";
  r.referer = "";
  r.user_agent = "curl/7.88 \x01";
  r.route = "items";
  r.status = 200;
  r.bytes_sent = 18446744073709551615u;
  r.upstream_ms = 0.184;
  r.total_ms = 1234.5678;
  r.decision = "forwarded";
  return r;
}

AccessRecord local_record() {  // answered without the upstream; nothing parsable arrived
  AccessRecord r;
  r.client = "::1";
  r.method = "-";
  r.status = 408;
  r.total_ms = 0.0004;
  r.decision = "proxy";
  return r;
}

// "prefix:" and `text` as a JSON access-log line writes it: the raw value of "path" in the line
// of a record whose target is `text`.
std::string escaped(std::string_view text) {
  AccessRecord r = forwarded_record();
  r.target = text;
  std::vector<std::string> lines =
      logged_lines({r}, AccessLogFormat::Json, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"));
  EXPECT_EQ(lines.size(), 1u);
  if (lines.size() != 1) return {};
  const std::string_view line = lines[0];
  const std::string_view before = "\"path\":\"", after = "\",\"route\":\"items\"";
  std::size_t from = line.find(before), to = line.rfind(after);
  if (from == std::string_view::npos || to == std::string_view::npos || from + before.size() > to) {
    ADD_FAILURE() << "no path member in " << line;
    return {};
  }
  from += before.size();
  return "prefix:" + std::string(line.substr(from, to - from));
}

TEST(JsonEscape, PlainTextIsAppendedAsIs) {
  EXPECT_EQ(escaped(""), "prefix:");
  EXPECT_EQ(escaped("/items/1?x=1&y=%20"), "prefix:/items/1?x=1&y=%20");
}

TEST(JsonEscape, QuotesBackslashesControlsAndNonAsciiBytesAreEscaped) {
  EXPECT_EQ(escaped("a\"b\\c"), "prefix:a\\\"b\\\\c");
  EXPECT_EQ(escaped(std::string_view("\0\n\x1f\x7f", 4)), "prefix:\\u0000\\u000a\\u001f\\u007f");
  EXPECT_EQ(escaped("caf\xc3\xa9!"), "prefix:caf\\u00c3\\u00a9!");
  EXPECT_EQ(escaped("\"start and end\""), "prefix:\\\"start and end\\\"");
}

// Whatever bytes a client sends, the escaped text is a valid JSON string of those bytes (each
// byte >= 0x80 becoming the code point of the same number).
TEST(JsonEscape, EveryByteRoundTripsThroughAJsonParser) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all.push_back(static_cast<char>(byte));
  std::string text = "\"" + escaped(all).substr(std::string_view("prefix:").size()) + "\"";
  std::string parsed = nlohmann::json::parse(text).get<std::string>();
  std::string expected;
  for (int byte = 0; byte < 256; ++byte) {
    if (byte < 0x80) {
      expected.push_back(static_cast<char>(byte));
    } else {  // U+0080..U+00FF in UTF-8
      expected.push_back(static_cast<char>(0xc0 | (byte >> 6)));
      expected.push_back(static_cast<char>(0x80 | (byte & 0x3f)));
    }
  }
  EXPECT_EQ(parsed, expected);
}

TEST(AccessLogTest, JsonLinesHaveEveryMemberInOrder) {
  const std::regex time(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  std::vector<std::string> lines = logged_lines({forwarded_record(), local_record()}, AccessLogFormat::Json, time);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            R"({"time":"TIME","request_id":"9f3c2a7b-000123","client":"127.0.0.1","method":"GET",)"
            R"("path":"/items/1?q=\"x y\"","route":"items","status":200,"bytes":18446744073709551615,)"
            R"("upstream_ms":0.184,"total_ms":1234.568,"decision":"forwarded"})");
  EXPECT_EQ(lines[1],
            R"({"time":"TIME","request_id":"","client":"::1","method":"-","path":"","route":"",)"
            R"("status":408,"bytes":0,"total_ms":0.000,"decision":"proxy"})");
  for (const std::string& line : lines) EXPECT_TRUE(nlohmann::json::accept(line)) << line;
}

TEST(AccessLogTest, CombinedLinesAreNginxsWithArbitersFieldsAfter) {
  const std::regex time(R"(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)");
  std::vector<std::string> lines =
      logged_lines({forwarded_record(), local_record()}, AccessLogFormat::Combined, time);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            R"(127.0.0.1 - - [TIME] "GET /items/1?q=\x22x y\x22 HTTP/1.1" 200 18446744073709551615 "-" )"
            R"("curl/7.88 \x01" rt=1.235 uht=0.000 route=items decision=forwarded request_id=9f3c2a7b-000123)");
  EXPECT_EQ(lines[1], R"(::1 - - [TIME] "-" 408 0 "-" "-" rt=0.000 uht=- route=- decision=proxy request_id=-)");
}

// A line longer than the buffer's spare room (a long target) is written whole.
TEST(AccessLogTest, ALineLongerThanTheBufferIsWrittenWhole) {
  AccessRecord r = forwarded_record();
  std::string target = "/" + std::string(3 * AccessLog::kFlushBytes, 'a') + "\x7f";
  r.target = target;
  const std::regex time(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  std::vector<std::string> lines = logged_lines({forwarded_record(), r, forwarded_record()}, AccessLogFormat::Json, time);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["path"], target);
  EXPECT_EQ(lines[0], lines[2]);
}

// record() makes room for a line once, before formatting it in place (proxy/observe/log.cpp):
// kMaxFixed (512) bytes for names, punctuation, the time and the numbers, and the worst escape
// of each text byte (JSON \u00XX: 6; combined \xHH: 4). Lines with every field at its longest
// (text that escapes byte by byte, the longest numbers each format can write, "-" for every
// empty field) stay within it.
TEST(AccessLogTest, LinesWithEveryFieldAtItsLongestFitTheRoomMadeForThem) {
  const std::string text(1000, '\x01');
  std::vector<AccessRecord> records;
  // 1e59 ms: 64 bytes in JSON ("%.3f"); 1e62 ms: 64 bytes as the combined format's seconds; the
  // largest value of the short path; a negative one, with its sign.
  for (double ms : {1e59, 1e62, 999999999999.9996, -1e58}) {
    AccessRecord r;
    r.request_id = r.client = r.method = r.target = r.protocol = r.referer = r.user_agent = r.route = r.decision = text;
    r.status = 2147483647;
    r.bytes_sent = 18446744073709551615u;
    r.upstream_ms = r.total_ms = ms;
    records.push_back(r);
    AccessRecord empty;
    empty.status = -2147483647 - 1;
    empty.bytes_sent = r.bytes_sent;
    empty.upstream_ms = empty.total_ms = ms;
    records.push_back(empty);
  }
  for (AccessLogFormat format : {AccessLogFormat::Json, AccessLogFormat::Combined}) {
    std::vector<std::string> lines = logged_lines(records, format, std::regex("$^"));
    ASSERT_EQ(lines.size(), records.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const AccessRecord& r = records[i];
      std::size_t text_bytes = r.request_id.size() + r.client.size() + r.method.size() + r.target.size() +
                               r.route.size() + r.decision.size();
      std::size_t room = format == AccessLogFormat::Json
                             ? 512 + 6 * text_bytes
                             : 512 + 4 * (text_bytes + r.protocol.size() + r.referer.size() + r.user_agent.size());
      EXPECT_LE(lines[i].size() + 1, room) << access_log_format_name(format) << " line " << i;
      EXPECT_GT(lines[i].size() + 1, room - 512) << "every text byte escaped at its longest: line " << i;
      if (format == AccessLogFormat::Json) EXPECT_TRUE(nlohmann::json::accept(lines[i])) << lines[i].substr(0, 400);
    }
  }
}

}  // namespace
}  // namespace arbiter
