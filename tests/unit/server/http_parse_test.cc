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
