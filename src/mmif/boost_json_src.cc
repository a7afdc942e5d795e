// The compiled part of Boost.JSON, built from its headers. Used only by the fuzz build
// (CLAMS_BUILD_FUZZ), where the parser must carry libFuzzer's coverage instrumentation;
// every other build links Debian's libboost_json.
#include <boost/json/src.hpp>
