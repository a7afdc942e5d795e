// Tree arenas whose blocks are recycled across documents (see MakeTreeArena in
// clams/mmif/json.h).
#include <boost/json/monotonic_resource.hpp>
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

#include "clams/mmif/json.h"

namespace clams::mmif {
namespace {

// The first block of an arena made without a size: Boost.JSON's own default.
constexpr std::size_t kDefaultFirstBlockBytes = 1024;
// The most memory the cache keeps for later trees, in freed arena blocks: the trees of a few
// large requests (a 12.8k-token sentence-splitter answer takes 8 MiB of blocks), small next
// to what a worker serving such requests holds anyway. Blocks beyond it go back to the
// allocator. Under AddressSanitizer nothing is kept, so a value used after its tree is gone
// is reported rather than read from the next tree.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kMaxCachedBytes = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr std::size_t kMaxCachedBytes = 0;
#else
constexpr std::size_t kMaxCachedBytes = std::size_t{64} << 20;
#endif
#else
constexpr std::size_t kMaxCachedBytes = std::size_t{64} << 20;
#endif
// A cached block serves a request for at least 1/kMaxWasteFactor of its size, so a small
// document does not take (and keep busy) a block sized for a huge one.
constexpr std::size_t kMaxWasteFactor = 2;
// The header in front of each block: its usable size, padded to the strictest fundamental
// alignment so the block stays aligned like operator new's memory.
constexpr std::size_t kHeaderBytes = alignof(std::max_align_t);
static_assert(kHeaderBytes >= sizeof(std::size_t));

// The upstream of every tree arena. Hands out a cached block when one fits, else one from
// operator new, and keeps freed blocks, newest last, up to kMaxCachedBytes (the oldest go
// first). A block's usable size is kept in a header, because monotonic_resource frees a
// block with a size other than the one it asked for (Boost 1.81 leaves its block header
// out). Thread-safe: a tree is freed on whichever thread drops the last reference to it.
class BlockCache final : public json::memory_resource {
 private:
  struct Block {
    std::size_t size;  // usable bytes
    void* memory;      // what operator new returned (the header's address)
  };

  static std::size_t& SizeOf(void* memory) { return *static_cast<std::size_t*>(memory); }
  static void* Usable(void* memory) { return static_cast<unsigned char*>(memory) + kHeaderBytes; }
  static void* MemoryOf(void* usable) { return static_cast<unsigned char*>(usable) - kHeaderBytes; }

  void* do_allocate(std::size_t n, std::size_t align) override {
    if (align > kHeaderBytes) throw std::bad_alloc();  // arenas ask for max_align_t at most
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest cached block that fits (the cache holds a handful of blocks).
      auto best = blocks_.end();
      for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
        if (it->size >= n && it->size / kMaxWasteFactor <= n &&
            (best == blocks_.end() || it->size < best->size)) {
          best = it;
        }
      }
      if (best != blocks_.end()) {
        void* memory = best->memory;
        cached_bytes_ -= best->size;
        blocks_.erase(best);
        return Usable(memory);
      }
    }
    void* memory = ::operator new(kHeaderBytes + n);
    SizeOf(memory) = n;
    return Usable(memory);
  }

  void do_deallocate(void* p, std::size_t /*n*/, std::size_t /*align*/) override {
    void* memory = MemoryOf(p);
    const std::size_t size = SizeOf(memory);
    std::vector<void*> released;  // freed outside the lock
    if (size <= kMaxCachedBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      while (cached_bytes_ + size > kMaxCachedBytes) {
        released.push_back(blocks_.front().memory);
        cached_bytes_ -= blocks_.front().size;
        blocks_.erase(blocks_.begin());
      }
      blocks_.push_back(Block{size, memory});
      cached_bytes_ += size;
    } else {
      released.push_back(memory);
    }
    for (void* m : released) ::operator delete(m);
  }

  bool do_is_equal(const json::memory_resource& other) const noexcept override {
    return this == &other;
  }

  std::mutex mutex_;
  std::vector<Block> blocks_;
  std::size_t cached_bytes_ = 0;
};

BlockCache& TheBlockCache() {
  // Never destroyed: trees may be freed during static destruction.
  static auto* const cache = new BlockCache();
  return *cache;
}

}  // namespace

json::storage_ptr MakeTreeArena(std::size_t initial_bytes) {
  return json::make_shared_resource<json::monotonic_resource>(
      initial_bytes == 0 ? kDefaultFirstBlockBytes : initial_bytes,
      json::storage_ptr(&TheBlockCache()));
}

}  // namespace clams::mmif
