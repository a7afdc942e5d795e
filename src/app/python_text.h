// Python's text forms of values (str and repr), which the Python SDK writes
// into MMIF (recorded parameters, warnings, error messages). Matching them
// keeps our output identical where clients may compare it.
#ifndef CLAMS_SRC_APP_PYTHON_TEXT_H_
#define CLAMS_SRC_APP_PYTHON_TEXT_H_

#include <string>
#include <string_view>

#include "clams/mmif/json.h"

namespace clams::app_internal {

namespace json = ::boost::json;

/// repr() of a Python str: 'abc', "it's", with Python's escapes.
std::string PythonStringRepr(std::string_view s);
/// repr() of the Python value json.loads would give for `v`
/// ('a', 5, 0.7, True, None, [1, 'x'], {'k': 'v'}).
std::string PythonRepr(const json::value& v);
/// str() of that value: strings as they are, everything else as repr().
std::string PythonStr(const json::value& v);
/// Python's type name of that value: str, int, float, bool, NoneType, list, dict.
std::string_view PythonTypeName(const json::value& v);

}  // namespace clams::app_internal

#endif  // CLAMS_SRC_APP_PYTHON_TEXT_H_
