// vram-workload: a whisper-like GPU workload for demos, tests and the GPU
// verification script. Each request "transcribes" with a model whose
// weights stay in a per-worker cache (like the whisper wrapper's) and holds
// activations of 15 % of the weights for `holdMs`. Memory is real CUDA
// memory (a CUDA runtime loaded at run time) or simulated VRAM when
// CLAMS_SIM_GPUS is set.
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "clams/app/app.h"
#include "clams/base/log.h"
#include "clams/gpu/allocator.h"
#include "clams/mmif/vocabulary.h"
#include "clams/server/serve.h"

namespace {

namespace vocab = clams::mmif::vocab;
namespace json = boost::json;

constexpr std::uint64_t kGiB = 1ull << 30;
// Weights per model size (DESIGN.md §7).
const std::map<std::string, std::uint64_t>& ModelBytes() {
  static const std::map<std::string, std::uint64_t>* m = new std::map<std::string, std::uint64_t>{
      {"tiny", 1 * kGiB}, {"base", 1 * kGiB}, {"small", 2 * kGiB},
      {"medium", 5 * kGiB}, {"large", 10 * kGiB}, {"turbo", 6 * kGiB}};
  return *m;
}
constexpr double kActivationShare = 0.15;

std::uint64_t Activations(std::uint64_t weights) { return static_cast<std::uint64_t>(weights * kActivationShare); }

class VramWorkload : public clams::App {
 public:
  clams::AppMetadata Metadata() const override {
    clams::AppMetadata m;
    m.name = "VRAM Workload";
    m.description =
        "A whisper-like GPU workload: model weights cached per worker plus activations of 15 % of the weights "
        "held for holdMs. Real CUDA memory, or simulated VRAM with CLAMS_SIM_GPUS.";
    m.app_license = "Apache-2.0";
    m.identifier = "vram-workload";
    m.url = "https://github.com/clams-cpp/clams-cpp/tree/main/apps/vram-workload";
    m.est_gpu_mem_min = 1500;
    m.est_gpu_mem_typ = 6000;
    (void)m.AddInputOneOf({{std::string(vocab::kAudioDocument)}, {std::string(vocab::kVideoDocument)}});
    (void)m.AddOutput(vocab::kTextDocument);
    (void)m.AddOutput(vocab::kTimeFrame, {{"timeUnit", "milliseconds"}});
    (void)m.AddOutput(vocab::kAlignment);
    std::vector<json::value> models;
    for (const auto& [name, bytes] : ModelBytes()) models.emplace_back(name);
    (void)m.AddParameter({.name = "model",
                          .description = "Model size: weights of tiny 1 GiB, base 1 GiB, small 2 GiB, medium 5 GiB, "
                                         "large 10 GiB, turbo 6 GiB, kept in the worker's model cache.",
                          .type = clams::ParamType::kString,
                          .choices = models,
                          .default_value = "turbo"});
    (void)m.AddParameter({.name = "holdMs",
                          .description = "How long a request holds its activations (15 % of the weights), in ms.",
                          .type = clams::ParamType::kInteger,
                          .default_value = 200});
    (void)m.AddParameter({.name = "declareVram",
                          .description = "Declare the estimate (weights + activations) through EstimateVram; "
                                         "false leaves it to measured profiles.",
                          .type = clams::ParamType::kBoolean,
                          .default_value = true});
    (void)m.AddParameter({.name = "failMode",
                          .description = "For fault tests: none; oom (loads the model, holds the activations, "
                                         "then fails as CUDA does when one more allocation does not fit); "
                                         "location (an error quoting the first document's location, as an app "
                                         "that cannot open it does); crash (abort); hang (never returns).",
                          .type = clams::ParamType::kString,
                          .choices = {"none", "oom", "location", "crash", "hang"},
                          .default_value = "none"});
    return m;
  }

  // Only the model shapes memory: holdMs=200 and holdMs=2000 are one class.
  std::vector<std::string> ClassParameters() const override { return {"model"}; }

  // Requests share a worker's models (load once, serve many): the cache is
  // guarded, each request holds its own activations.
  bool thread_safe() const override { return true; }

  std::optional<std::uint64_t> EstimateVram(const clams::Params& params) const override {
    if (!params.GetBool("declareVram")) return std::nullopt;
    const std::uint64_t weights = ModelBytes().at(params.GetString("model"));
    return weights + Activations(weights);
  }

  clams::Status Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) override {
    const std::string mode = params.GetString("failMode");
    if (mode == "crash") std::abort();
    if (mode == "hang") {
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    if (mode == "location") {
      const auto docs = mmif.documents();
      const std::string location = docs.empty() ? "" : std::string(docs.front().location().value_or(""));
      return clams::UnknownError("FileNotFoundError: cannot open " + location);
    }
    clams::gpu::DeviceAllocator* allocator = nullptr;
    const std::string model = params.GetString("model");
    const std::uint64_t weights = ModelBytes().at(model);
    {
      // One copy of each model per worker, loaded by the first request that
      // needs it; concurrent requests for it wait for the load.
      std::lock_guard<std::mutex> lock(mu_);
      if (!allocator_) {
        auto a = clams::gpu::DeviceAllocator::Create(clams::gpu::AllocatorOptions::FromEnvironment());
        if (!a.ok()) {
          return clams::FailedPreconditionError("vram-workload needs a GPU (CUDA runtime) or CLAMS_SIM_GPUS: " +
                                                a.status().message());
        }
        allocator_ = std::move(a).value();
      }
      allocator = allocator_.get();
      if (cache_.find(model) == cache_.end()) {
        CLAMS_ASSIGN_OR_RETURN(clams::gpu::DeviceBuffer w, allocator_->Allocate(0, weights));
        cache_.emplace(model, std::move(w));
        CLAMS_LOG(kInfo, "vram-workload: loaded model {} ({} MiB)", model, weights >> 20);
      }
    }
    {
      CLAMS_ASSIGN_OR_RETURN(clams::gpu::DeviceBuffer activations, allocator->Allocate(0, Activations(weights)));
      if (mode == "oom") {
        // What a framework reports when the next allocation does not fit.
        return clams::ResourceExhaustedError("CUDA out of memory. Tried to allocate " + std::to_string(weights >> 20) +
                                             " MiB (failMode=oom)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(params.GetInt("holdMs")));
    }
    auto sources = mmif.DocumentsByType(vocab::kAudioDocument);
    auto video = mmif.DocumentsByType(vocab::kVideoDocument);
    sources.insert(sources.end(), video.begin(), video.end());
    clams::mmif::View view = mmif.NewView();
    view.NewContain(vocab::kTimeFrame, {{"timeUnit", "milliseconds"}});
    for (const auto& doc : sources) {
      auto text = view.NewTextDocument("transcript by the " + model + " model", "en");
      auto tf = view.NewAnnotation(vocab::kTimeFrame, {{"start", 0}, {"end", params.GetInt("holdMs")},
                                                       {"label", "speech"}, {"document", doc.long_id()}});
      view.NewAnnotation(vocab::kAlignment, {{"source", tf.id()}, {"target", text.id()}});
    }
    if (sources.empty()) clams::Warn("no AudioDocument or VideoDocument in the input");
    return clams::Status::Ok();
  }

 private:
  std::mutex mu_;
  std::unique_ptr<clams::gpu::DeviceAllocator> allocator_;
  std::map<std::string, clams::gpu::DeviceBuffer> cache_;
};

}  // namespace

int main(int argc, char** argv) {
  VramWorkload app;
  return clams::Serve(app, argc, argv);
}
