// clams/vram/vram.h
//
// VRAM admission control: request classes, estimates with a recorded
// source, measured profiles persisted on disk, the admission rule of
// DESIGN.md §4, and the scheduling decision (which queued request runs on
// which worker, which idle worker to evict). Everything here is pure logic
// or file I/O: the server's scheduler owns the queue, the workers and the
// event loop, feeds this module snapshots, and applies its decisions.
//
// Terms. A request's *class* is (app identifier, app version, canonical
// JSON of the refined parameters without the universal ones); its key is
// the MD5 hex of that text (the memory-relevant parameters only, when the
// app names them). An estimate says how much one request makes a worker's
// GPU usage grow: `full` for a worker that does not hold the class (fresh,
// or used for other classes only) and `warm` for a worker that holds it
// (has run it or is running it).
//
// Admission rule on device d (decided in one place, one at a time):
//   need_j        = warm_j on a worker that holds j's class, else full_j
//                   (+ AdmissionOptions::fresh_worker_bytes on a worker with no
//                   GPU memory yet: its CUDA context)
//   outstanding_w = max(0, sum of needs of w's running requests - growth_w)
//                   for each worker w on d (growth shared, see ledger.h)
//   headroom      = free_d(now) - sum(outstanding_w) - safety_d
//   admit j  iff  need_j <= headroom
//
// Typical use by the server's scheduler:
//
//   RequestClass c = RequestClass::Make(id, version, CanonicalClassParameters(params));
//   std::optional<Profile> p = store->Get(c.key);
//   Estimate e = ResolveEstimate(app.EstimateVram(params), p ? &*p : nullptr, typ_mb, total);
//   Decision d = Decide(queue, workers, devices, ledger.Snapshot(), Clock::now(), options);
//   Reservation r = ledger.Reserve(...);   // per dispatch, released when it ends
//   ... id = sampler->BeginWindow(worker) at dispatch, EndWindow(id) at the end ...
//   store->Record(c, params.values(), window->growth(), dispatch.warm, ms, device_name);
//
// Thread safety: ProfileStore is thread-safe; Sampler runs its own thread
// and its methods are thread-safe; Decide() and the estimate functions are
// pure.
#ifndef CLAMS_VRAM_VRAM_H_
#define CLAMS_VRAM_VRAM_H_

#include "clams/vram/admission.h"
#include "clams/vram/estimate.h"
#include "clams/vram/ledger.h"
#include "clams/vram/profile_store.h"
#include "clams/vram/request_class.h"
#include "clams/vram/sampler.h"

#endif  // CLAMS_VRAM_VRAM_H_
