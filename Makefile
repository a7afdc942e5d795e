# Wrappers around the CMake build. `make run` and `make test` start from nothing:
# they install the Debian packages, configure, build, then run or test.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PORT       ?= 5000
PREFIX     ?= /usr/local
DEMO       ?= tests/data/mmif/demo.json
SAMPLE     ?= tests/data/mmif/bars-tones-slates.json
# What `make run` builds: the app it serves and the clams CLI (not the tests).
RUN_TARGETS = sentence-splitter clams
# `make image`: which app (apps/<APP>) goes into the image, and the image's name.
APP        ?= sentence-splitter
IMAGE      ?= clams-$(APP):latest
GIT_REVISION := $(shell git describe --tags --always --abbrev=10 2>/dev/null)
# The app's version in the image's metadata (CLAMS_APP_VERSION); by default the git revision.
APP_VERSION ?= $(GIT_REVISION)

.PHONY: all deps configure build run describe test bench asan tsan fuzz chaos chaos-smoke soak install docs format clean image image-test

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: the sentence-splitter app served in production mode, in the foreground.
# Builds only the app and the CLI. The recipe execs the server, so Ctrl-C (SIGINT) reaches it:
# it drains and stops.
run: configure
	cmake --build $(BUILD) -j $(JOBS) --target $(RUN_TARGETS)
	@echo ""
	@echo "Serving apps/sentence-splitter in production mode on http://localhost:$(PORT); Ctrl-C drains and stops it."
	@echo "Try it from another terminal:"
	@echo "  curl -s localhost:$(PORT)/   # metadata"
	@echo "  curl -s -X POST 'localhost:$(PORT)/?pretty' -d @$(DEMO)   # sentences and tokens"
	@echo "  curl -s localhost:$(PORT)/metrics   # Prometheus metrics"
	@echo "  open http://localhost:$(PORT)/status   # the live page"
	@echo "The GPU-memory-aware server on a simulated 24 GiB GPU (no GPU needed):"
	@echo "  cmake --build $(BUILD) --target vram-workload"
	@echo "  CLAMS_SIM_GPUS=24GiB CLAMS_SIM_STATE=/tmp/clams-sim ./$(BUILD)/apps/vram-workload/vram-workload --production --port 5001"
	@echo "  curl -s -X POST 'localhost:5001/?model=large&hwFetch=true&pretty' -d @$(DEMO)"
	@echo "  curl -s 'localhost:5001/?includeVRAM=true&pretty'   # devices, workers, queue"
	@echo ""
	exec ./$(BUILD)/apps/sentence-splitter/sentence-splitter --production --port $(PORT)

# Describe a bundled MMIF file with the clams CLI.
describe: build
	./$(BUILD)/src/cli/clams mmif describe $(SAMPLE)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	./bench/run.sh $(BUILD)

# Installs the SDK (headers, static libraries, CMake package for find_package(clams)) and
# the clams CLI under PREFIX.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# Regenerates docs/server-flags.md from the flag table (a unit test checks it is current).
# Everything up to the marker line is kept; the table after it is replaced.
docs: build
	sed '/^<!-- flag table: generated/q' docs/server-flags.md > docs/server-flags.md.tmp
	./$(BUILD)/apps/sentence-splitter/sentence-splitter --print-flags-markdown >> docs/server-flags.md.tmp
	mv docs/server-flags.md.tmp docs/server-flags.md

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCLAMS_SANITIZE=ON \
	  -DCLAMS_BUILD_BENCH=OFF -DCLAMS_BUILD_APPS=ON -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $(CMAKE_ARGS)

# AddressSanitizer + UndefinedBehaviorSanitizer build of the tests (tests labelled nosan skipped).
asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -LE nosan

$(TSAN_BUILD)/build.ninja:
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCLAMS_TSAN=ON \
	  -DCLAMS_BUILD_BENCH=OFF -DCLAMS_BUILD_APPS=ON -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $(CMAKE_ARGS)

# ThreadSanitizer build of the tests (tests labelled notsan are skipped). The servers and
# workers the e2e tests start are TSan builds too: every process writes its reports under
# $(TSAN_BUILD)/tsan-reports/ (halt_on_error stops it at the first), and the target fails if
# any process, test or server, reported a race, even one the test itself did not notice.
tsan: deps $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	rm -rf $(TSAN_BUILD)/tsan-reports && mkdir -p $(TSAN_BUILD)/tsan-reports
	cd $(TSAN_BUILD) && \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$(CURDIR)/$(TSAN_BUILD)/tsan-reports/report \
	  ctest --output-on-failure -j $(JOBS) -LE notsan
	@if [ -n "$$(ls $(TSAN_BUILD)/tsan-reports)" ]; then cat $(TSAN_BUILD)/tsan-reports/*; \
	  echo "make tsan: ThreadSanitizer reports above (in $(TSAN_BUILD)/tsan-reports/)"; exit 1; fi

$(FUZZ_BUILD)/build.ninja:
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLAMS_BUILD_FUZZ=ON \
	  -DCLAMS_BUILD_TESTS=OFF -DCLAMS_BUILD_BENCH=OFF -DCLAMS_BUILD_APPS=OFF -DCLAMS_INSTALL=OFF $(CMAKE_ARGS)

# A short libFuzzer run of every parser of network input: the MMIF parser and validator, the
# query string and parameter refinement, request envelopes, the HTTP request parser, the
# front<->worker wire format (tests/fuzz/). FUZZ_SECONDS (default 30) is the total, split evenly
# across the targets.
# Only the fuzz targets and what they link are built.
fuzz: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target clams_fuzzers
	./tests/fuzz/run.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-30}

# The chaos suite (tests/chaos/chaos.py, docs/reliability.md): every scenario under steady load
# on simulated GPUs (one without a GPU), one row each (answers by status, lost, front alive, simulated OOM, front
# RSS), the table also in $(BUILD)/chaos-table.md. Minutes. `chaos-smoke` is the short subset
# ctest runs; `soak` runs SOAK_MINUTES (default 30) at 2x capacity.
CHAOS_TARGETS = vram-workload clams-test-app clams
SOAK_MINUTES ?= 30
chaos: configure
	cmake --build $(BUILD) -j $(JOBS) --target $(CHAOS_TARGETS)
	python3 tests/chaos/chaos.py --build $(BUILD) --table $(BUILD)/chaos-table.md

chaos-smoke: configure
	cmake --build $(BUILD) -j $(JOBS) --target $(CHAOS_TARGETS)
	python3 tests/chaos/chaos.py --build $(BUILD) --smoke

soak: configure
	cmake --build $(BUILD) -j $(JOBS) --target $(CHAOS_TARGETS)
	python3 tests/chaos/chaos.py --build $(BUILD) --soak $(SOAK_MINUTES) --table $(BUILD)/soak-table.md

# The container image (Containerfile) with podman or buildah, whichever is installed. The docker
# format keeps the HEALTHCHECK (OCI images have none).
image:
	@if command -v podman >/dev/null 2>&1; then \
	  podman build --format docker -f Containerfile --build-arg APP=$(APP) --build-arg APP_VERSION=$(APP_VERSION) \
	    --build-arg CLAMS_GIT_REVISION=$(GIT_REVISION) -t $(IMAGE) . ; \
	elif command -v buildah >/dev/null 2>&1; then \
	  buildah build --format docker -f Containerfile --build-arg APP=$(APP) --build-arg APP_VERSION=$(APP_VERSION) \
	    --build-arg CLAMS_GIT_REVISION=$(GIT_REVISION) -t $(IMAGE) . ; \
	else \
	  echo "make image: needs podman or buildah, and neither is installed (apt-get install podman)." >&2; \
	  echo "Without them, 'make image-test' builds the same stages in debootstrap chroots." >&2; \
	  exit 1; \
	fi

# The Containerfile's stages built in debootstrap chroots and the server run from the result
# (needs root and Debian's mirror; not part of CI). See scripts/image_test.py.
image-test:
	./scripts/image_test.py --app $(APP) --app-version "$(APP_VERSION)" --jobs $(JOBS)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
