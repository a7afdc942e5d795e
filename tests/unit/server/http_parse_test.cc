// The request parsing of the HTTP server without sockets: framing rules
// (RFC 9112 §6), limits and pipelining, through ParseHttpStream, which runs
// the same parser settings and checks as a connection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "server/http_server.h"

namespace clams::server {
namespace {

using ::testing::ElementsAre;

HttpServerOptions Options() {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  o.max_header_bytes = 8 * 1024;
  return o;
}

// Every split of the bytes gives the same answer (the body of one request
// arriving in pieces must not change how it is read).
std::vector<ParsedHttpRequest> Parse(const std::string& wire) {
  std::vector<ParsedHttpRequest> whole = ParseHttpStream(wire, Options(), wire.size() + 1);
  for (std::size_t piece : {1u, 3u, 17u}) {
    std::vector<ParsedHttpRequest> split = ParseHttpStream(wire, Options(), piece);
    EXPECT_EQ(split.size(), whole.size()) << "pieces of " << piece;
    for (std::size_t i = 0; i < std::min(split.size(), whole.size()); ++i) {
      EXPECT_EQ(split[i].rejection.has_value(), whole[i].rejection.has_value());
      if (split[i].rejection && whole[i].rejection) {
        EXPECT_EQ(split[i].rejection->reason, whole[i].rejection->reason);
      }
      EXPECT_EQ(split[i].request.body, whole[i].request.body);
    }
  }
  return whole;
}

std::string Rejection(const std::vector<ParsedHttpRequest>& parsed) {
  if (parsed.empty() || !parsed.back().rejection) return "(none)";
  return std::to_string(parsed.back().rejection->status) + " " + parsed.back().rejection->reason;
}

TEST(CheckFramingTest, OnlyAFinalSingleChunkedIsAccepted) {
  EXPECT_EQ(CheckFraming(11, "chunked", false), std::nullopt);
  EXPECT_EQ(CheckFraming(11, " Chunked ", false), std::nullopt);
  EXPECT_EQ(CheckFraming(11, "gzip", false)->reason,
            "bad Transfer-Encoding: the last transfer coding must be chunked (RFC 9112 section 6.3)");
  EXPECT_EQ(CheckFraming(11, "chunked, gzip", false)->status, 400);
  EXPECT_EQ(CheckFraming(11, "", false)->status, 400);
  EXPECT_EQ(CheckFraming(11, "chunked, chunked", false)->reason,
            "bad Transfer-Encoding: chunked is applied more than once");
  auto gzip_chunked = CheckFraming(11, "gzip, chunked", false);
  ASSERT_TRUE(gzip_chunked.has_value());
  EXPECT_EQ(gzip_chunked->status, 501);
  EXPECT_EQ(gzip_chunked->reason, "unsupported transfer coding: only chunked is accepted, got \"gzip, chunked\"");
  EXPECT_EQ(CheckFraming(11, "chunked", true)->reason,
            "bad Transfer-Encoding: not allowed together with Content-Length");
  EXPECT_EQ(CheckFraming(10, "chunked", false)->reason, "bad Transfer-Encoding: not allowed in an HTTP/1.0 request");
}

// Issue 10: a Transfer-Encoding that does not end in chunked left the body
// to be read as the next request (a desync behind a proxy).
TEST(ParseHttpStreamTest, Issue10TransferEncodingNotEndingInChunkedIsRejectedAndNothingAfterIsRead) {
  const std::string smuggled = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  auto parsed = Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(Rejection(parsed), "400 bad Transfer-Encoding: the last transfer coding must be chunked (RFC 9112 section 6.3)");
}

TEST(ParseHttpStreamTest, Issue10TransferEncodingWithContentLengthIsRejectedInEitherOrder) {
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc")),
            "400 bad Transfer-Encoding: not allowed together with Content-Length");
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")),
            "400 bad Transfer-Encoding: not allowed together with Content-Length");
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc")),
            "400 bad Transfer-Encoding: not allowed together with Content-Length");
}

TEST(ParseHttpStreamTest, Issue10TransferEncodingInHttp10IsRejected) {
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")),
            "400 bad Transfer-Encoding: not allowed in an HTTP/1.0 request");
}

TEST(ParseHttpStreamTest, Issue10ChunkedTwiceInTwoFieldsIsRejected) {
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")),
            "400 bad Transfer-Encoding: chunked is applied more than once");
}

TEST(ParseHttpStreamTest, ChunkedBodiesAreDecodedAndBadChunkSizesRejected) {
  auto ok = Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_FALSE(ok[0].rejection.has_value());
  EXPECT_EQ(ok[0].request.body, "abcde");
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n")),
            "400 malformed HTTP request body");
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n")),
            "400 malformed HTTP request body");
  // A chunk size past the body limit (or past 64 bits) is a 413, before any of it is read.
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\nabc")),
            "413 request body too large: the limit is 1024 bytes (--max-body-size)");
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc")),
            "400 malformed HTTP request body");
}

TEST(ParseHttpStreamTest, LimitsGive413And431) {
  EXPECT_EQ(Rejection(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")),
            "413 request body too large: the limit is 1024 bytes (--max-body-size)");
  EXPECT_EQ(Rejection(Parse("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10 * 1024, 'a') + "\r\n\r\n")),
            "431 request header too large");
  EXPECT_EQ(Rejection(Parse("NOT HTTP AT ALL\r\n\r\n")), "400 malformed HTTP request");
}

// The header limit is exact however the bytes arrive: it counts the whole
// header, its last empty line included. A header one byte over it was read
// when it came whole (the parser's first look takes field lines up to the
// limit counted after the request line) and refused when it came in pieces;
// with the lines taken in a first look of 100 bytes, up to 100 bytes over.
TEST(ParseHttpStreamTest, TheHeaderLimitCountsTheWholeHeaderHoweverItArrives) {
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\nX-Pad: ";
  const std::size_t limit = Options().max_header_bytes;
  const auto header = [&](std::size_t size) { return get + std::string(size - get.size() - 4, 'a') + "\r\n\r\n"; };
  for (std::size_t piece : std::vector<std::size_t>{1, 4, 17, 40, 100, 4096, limit + 200}) {
    for (std::size_t size : {limit - 1, limit}) {
      const auto parsed = ParseHttpStream(header(size), Options(), piece);
      EXPECT_EQ(Rejection(parsed), "(none)") << "pieces of " << piece << ", " << size << " bytes";
      EXPECT_EQ(parsed.size(), 1u);
    }
    for (std::size_t size : {limit + 1, limit + 2, limit + 3, limit + 4, limit + 30, limit + 100}) {
      EXPECT_EQ(Rejection(ParseHttpStream(header(size), Options(), piece)), "431 request header too large")
          << "pieces of " << piece << ", " << size << " bytes";
    }
  }
  // The header's end right after the lines a first look took.
  const std::string lines = "GET / HTTP/1.1\r\nX-Pad: " + std::string(limit - 30, 'a') + "\r\n";
  for (std::size_t piece : std::vector<std::size_t>{1, lines.size(), lines.size() + 1}) {
    EXPECT_EQ(Rejection(ParseHttpStream(lines + "\r\n", Options(), piece)), "(none)") << piece;
  }
}

// A header that does not end within the limit, with a malformed field
// within it, is rejected however its bytes arrive, but as 400 or 431
// depending on how they do: the parser checks the fields it has whole in
// its first look at a request (400 at once), and after that only looks for
// the header's end within the limit (431 when it is not there). Both are
// the server's own answers with the connection closed; nothing of the
// request is read either way. (http_fuzz allows exactly this difference.)
TEST(ParseHttpStreamTest, AHeaderOverTheLimitWithAMalformedFieldIs400Or431AndNeverRead) {
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\nX-Pad: ";
  const std::string over = head + std::string(Options().max_header_bytes, 'a') + "\r\n\r\n";
  for (std::size_t piece : std::vector<std::size_t>{1, 4, 17, 100, 4096, over.size() + 1}) {
    const auto parsed = ParseHttpStream(over, Options(), piece);
    ASSERT_EQ(parsed.size(), 1u) << piece;
    EXPECT_THAT(Rejection(parsed), ::testing::AnyOf("400 malformed HTTP request", "431 request header too large"))
        << piece;
  }
  // Its first look, at the first 100 bytes, sees the malformed field; at one
  // byte at a time, or all at once, the size decides first.
  EXPECT_EQ(Rejection(ParseHttpStream(over, Options(), 100)), "400 malformed HTTP request");
  EXPECT_EQ(Rejection(ParseHttpStream(over, Options(), 1)), "431 request header too large");
  EXPECT_EQ(Rejection(ParseHttpStream(over, Options(), over.size() + 1)), "431 request header too large");
  // Within the limit, it is 400 however it arrives.
  EXPECT_EQ(Rejection(Parse(head + "a\r\n\r\n")), "400 malformed HTTP request");
}

TEST(ParseHttpStreamTest, PipelinedRequestsAreReadInOrderAndConnectionCloseEndsTheStream) {
  auto parsed = Parse(
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /?pretty HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
      "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
  std::vector<std::string> targets;
  for (const auto& p : parsed) targets.push_back(p.request.method + " " + p.request.target + " " + p.request.body);
  EXPECT_THAT(targets, ElementsAre("GET /health ", "POST /?pretty {}", "GET /metrics "));
  EXPECT_EQ(parsed[1].request.query, "pretty");
  EXPECT_FALSE(parsed[2].request.keep_alive);
}

TEST(ParseHttpStreamTest, AnIncompleteLastRequestIsDropped) {
  auto parsed = Parse("GET /health HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].request.path, "/health");
}

}  // namespace
}  // namespace clams::server
