// clams/base/status.h
//
// The error vocabulary of clams-cpp: `clams::Status` and `clams::StatusOr<T>`.
//
// Every function that can fail for a reason the caller should handle returns a
// `Status` (or a `StatusOr<T>` when it also produces a value). Exceptions are
// used only at the edges (third-party JSON, app callbacks, the CLI parser) and
// are converted to a `Status` there; nothing throws across a thread or process
// boundary.
//
// Example:
//
//   clams::StatusOr<int> ParsePort(std::string_view s);
//   CLAMS_ASSIGN_OR_RETURN(int port, ParsePort(arg));
//   CLAMS_RETURN_IF_ERROR(server.Listen(port));
//
// Which code to pick (from the most specific to the least):
//   kInvalidArgument    the caller's input is wrong regardless of system state
//                       (malformed JSON, a parameter of the wrong type).
//   kNotFound           a named thing (file, id, view) does not exist.
//   kAlreadyExists      a thing the caller wanted to create exists.
//   kFailedPrecondition the system is not in a state that allows the call;
//                       retrying will not help until that state is fixed.
//   kOutOfRange         a value is valid in type but outside what this
//                       resource can ever provide (a request larger than any
//                       device) -- do not retry.
//   kResourceExhausted  a quota or capacity is used up right now (queue full,
//                       GPU memory); retrying later may succeed.
//   kUnavailable        the service cannot handle the call now (draining,
//                       worker lost); the same call can be retried.
//   kDeadlineExceeded   the call took longer than its deadline.
//   kCancelled          the caller went away or asked to stop.
//   kUnimplemented      the operation is not supported.
//   kInternal           an invariant is broken (a bug or a crashed component).
//   kUnknown            an error whose cause is not known (an app exception).
#ifndef CLAMS_BASE_STATUS_H_
#define CLAMS_BASE_STATUS_H_

#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace clams {

/// Canonical error codes (a subset of Abseil's, same meaning).
enum class StatusCode {
  kOk = 0,
  kCancelled,
  kUnknown,
  kInvalidArgument,
  kDeadlineExceeded,
  kNotFound,
  kAlreadyExists,
  kResourceExhausted,
  kFailedPrecondition,
  kOutOfRange,
  kUnimplemented,
  kInternal,
  kUnavailable,
};

/// Returns the canonical name of `code`, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

/// The result of an operation: `ok()` or a code with a message.
/// Cheap to copy when ok (no allocation).
class [[nodiscard]] Status {
 public:
  /// An ok status.
  Status() = default;
  /// A status with `code` and `message`. A kOk code ignores the message.
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// "OK" or "<CODE_NAME>: <message>".
  std::string ToString() const;

  /// Returns a copy whose message is `prefix + ": " + message()`; ok stays ok.
  Status WithContext(std::string_view prefix) const;

  /// Explicitly ignores this status (for the rare place where that is right).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status CancelledError(std::string message);
Status UnknownError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);

namespace base_internal {
[[noreturn]] void DieBecauseOfBadStatusAccess(const Status& status);
}  // namespace base_internal

/// Either a value of type T or a non-ok Status.
///
/// Accessing the value of a non-ok StatusOr is a programming error and ends
/// the process with a message (it never throws). Check `ok()` first, or use
/// CLAMS_ASSIGN_OR_RETURN.
template <typename T>
class [[nodiscard]] StatusOr {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>,
                "StatusOr<Status> is not allowed");

 public:
  /// Holds `status`, which must not be ok (an ok status becomes kInternal).
  StatusOr(Status status)  // NOLINT(google-explicit-constructor)
      : rep_(std::move(status)) {
    if (std::get<Status>(rep_).ok()) {
      rep_ = Status(StatusCode::kInternal, "StatusOr built from an ok Status");
    }
  }
  /// Holds `value`.
  template <typename U = T,
            typename = std::enable_if_t<std::is_convertible_v<U&&, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status>>>
  StatusOr(U&& value)  // NOLINT(google-explicit-constructor)
      : rep_(std::in_place_index<1>, std::forward<U>(value)) {}

  bool ok() const { return rep_.index() == 1; }

  /// The status: Ok() when a value is held.
  Status status() const { return ok() ? Status() : std::get<0>(rep_); }

  const T& value() const& {
    Check();
    return std::get<1>(rep_);
  }
  T& value() & {
    Check();
    return std::get<1>(rep_);
  }
  T&& value() && {
    Check();
    return std::get<1>(std::move(rep_));
  }
  /// The value if ok, else `fallback`.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<1>(rep_) : static_cast<T>(std::forward<U>(fallback));
  }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  void Check() const {
    if (!ok()) base_internal::DieBecauseOfBadStatusAccess(std::get<0>(rep_));
  }
  std::variant<Status, T> rep_;
};

}  // namespace clams

#define CLAMS_STATUS_CONCAT_INNER_(a, b) a##b
#define CLAMS_STATUS_CONCAT_(a, b) CLAMS_STATUS_CONCAT_INNER_(a, b)

/// Returns from the current function if `expr` (a Status) is not ok.
#define CLAMS_RETURN_IF_ERROR(expr)                                 \
  do {                                                              \
    ::clams::Status clams_status_tmp_ = (expr);                     \
    if (!clams_status_tmp_.ok()) return clams_status_tmp_;          \
  } while (false)

/// `CLAMS_ASSIGN_OR_RETURN(lhs, expr)`: evaluates `expr` (a StatusOr<T>);
/// returns its status if not ok, else moves the value into `lhs`
/// (which may be a declaration such as `auto x`).
#define CLAMS_ASSIGN_OR_RETURN(lhs, expr) \
  CLAMS_ASSIGN_OR_RETURN_IMPL_(CLAMS_STATUS_CONCAT_(clams_statusor_, __LINE__), lhs, expr)
#define CLAMS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // CLAMS_BASE_STATUS_H_
