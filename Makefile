# Thin wrapper around meson: the README's commands are `make demo` and `make check`.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
PYTHON     ?= /usr/bin/python3
NINJA      ?= ninja

.PHONY: all deps build check unit unit-asan system fuzz-smoke demo bench format clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dtests=true

build: $(BUILD)/build.ninja
	@$(NINJA) -C $(BUILD)

$(BUILD_ASAN)/build.ninja:
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dtests=true

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

unit-asan: $(BUILD_ASAN)/build.ninja
	@$(NINJA) -C $(BUILD_ASAN)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(BUILD_ASAN) --suite unit --print-errorlogs

system: build
	unshare -n sh -c 'ip link set lo up && exec env HYPR_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/system'

$(BUILD_FUZZ)/build.ninja:
	CC=clang meson setup $(BUILD_FUZZ) -Dfuzz=true -Dtests=false

# Each fuzz target replays its seed corpus and then fuzzes briefly.
fuzz-smoke: $(BUILD_FUZZ)/build.ninja
	@$(NINJA) -C $(BUILD_FUZZ)
	sh tests/fuzz/run.sh $(BUILD_FUZZ) $${FUZZ_SECONDS:-10}

check: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory system

demo: deps
	@$(MAKE) --no-print-directory build
	sh scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory build
	unshare -n sh -c 'ip link set lo up && exec env HYPR_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) bench/run.py'

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
