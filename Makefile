# Wrappers around the CMake build. `make run` and `make test` start from nothing:
# they install the Debian packages, configure, build, then run or test.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SAMPLE     ?= tests/data/mmif/bars-tones-slates.json

.PHONY: all deps configure build run test bench asan fuzz format clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: describe a bundled MMIF file with the clams CLI.
run: build
	./$(BUILD)/src/cli/clams mmif describe $(SAMPLE)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	./bench/run.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCLAMS_SANITIZE=ON \
	  -DCLAMS_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $(CMAKE_ARGS)

# AddressSanitizer + UndefinedBehaviorSanitizer build of the tests.
asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -LE nosan

$(FUZZ_BUILD)/build.ninja:
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLAMS_BUILD_FUZZ=ON \
	  -DCLAMS_BUILD_TESTS=OFF -DCLAMS_BUILD_BENCH=OFF -DCLAMS_BUILD_APPS=OFF $(CMAKE_ARGS)

# A short libFuzzer run of the MMIF parser and validator (FUZZ_SECONDS, default 30).
fuzz: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	./tests/fuzz/run.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-30}

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
