# ferry build.  `make` builds build/ferry and build/libferry.so (and the
# man page and bash completion, build/ferry.1 and build/ferry.bash, which
# nothing installs); `make test` installs what is missing, builds (plain
# and ASan+UBSan), and runs unit, integration and short fuzz runs;
# `make run` installs the build dependencies only and starts a demo worker
# (ports from $FERRY_S3_PORT and $FERRY_CONTROL_PORT); `make bench` runs
# the benchmarks (see bench/README.md).

CC      ?= gcc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-format-truncation -Werror
OPT     ?= -O2 -g
DEPS_CFLAGS := $(shell pkg-config --cflags libcurl openssl 2>/dev/null)
DEPS_LIBS   := $(shell pkg-config --libs libcurl openssl 2>/dev/null || echo -lcurl -lcrypto) -lpthread
CFLAGS  += $(CSTD) $(WARN) $(OPT) -fPIC $(DEPS_CFLAGS) -Iinclude -Isrc
LDFLAGS +=

rwildcard = $(foreach d,$(wildcard $(1:=/*)),$(call rwildcard,$d,$2) $(filter $(subst *,%,$2),$d))

# Core: everything the worker and CLI share.  The CLI's main and libferry's
# client live in src/cli and src/lib.
CORE_SRC := $(sort $(call rwildcard,src/common src/http src/s3 src/ufs src/store src/worker src/cluster,*.c))
LIB_SRC  := $(sort $(call rwildcard,src/lib,*.c))
# libferry.so is client code only: the client and what it uses (no worker,
# page store, gateway or under-store code), exporting exactly ferry.h.
LIB_DEPS := src/common/crypto.c src/common/curl_errno.c src/common/curl_pool.c \
	src/common/dbuf.c src/common/http_reply.c src/common/json.c src/common/sigv4.c \
	src/common/util.c \
	src/cluster/placement.c src/cluster/suspects.c
CLI_SRC  := $(sort $(call rwildcard,src/cli,*.c))
# `ferry fuse` (libfuse3): in the ferry binary only.
FUSE_SRC := $(sort $(wildcard src/fuse/*.c))
UNIT_SRC := $(sort $(shell find tests/unit -name 'test_*.c'))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

B ?= build
CORE_OBJ := $(CORE_SRC:%.c=$(B)/obj/%.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIBSO_OBJ := $(LIB_OBJ) $(LIB_DEPS:%.c=$(B)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
FUSE_OBJ := $(FUSE_SRC:%.c=$(B)/obj/%.o)
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3 -lpthread)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps build-deps test unit asan fuzz integration integration-asan run bench bench-quick clean lint FORCE

all: $(B)/ferry $(B)/libferry.so $(B)/ferry.1 $(B)/ferry.bash

# What `ferry --version` says: `git describe` in a checkout with tags, the
# release and the commit in one without, the release alone elsewhere.
FERRY_RELEASE := 0.1.0
FERRY_VERSION ?= $(shell v=$$(git describe --tags --dirty 2>/dev/null) && echo "$$v" || \
    { h=$$(git rev-parse --short HEAD 2>/dev/null) && \
      echo "$(FERRY_RELEASE)-g$$h$$(git diff --quiet HEAD -- 2>/dev/null || echo -dirty)"; } || \
    echo "$(FERRY_RELEASE)")
$(B)/obj/src/cli/main.o: CFLAGS += -DFERRY_VERSION='"$(FERRY_VERSION)"'
$(B)/obj/src/cli/main.o: $(B)/version
# Rewritten only when the version changes, so that main.o is rebuilt then.
$(B)/version: FORCE
	@mkdir -p $(B); echo '$(FERRY_VERSION)' | cmp -s - $@ || echo '$(FERRY_VERSION)' > $@

# The man page and bash completion, from the CLI's own option tables.
$(B)/ferry.1: $(B)/ferry
	$(B)/ferry --help-man > $@.tmp && mv $@.tmp $@
$(B)/ferry.bash: $(B)/ferry
	$(B)/ferry --help-completion > $@.tmp && mv $@.tmp $@

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libferry_core.a: $(CORE_OBJ) $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libferry.so: $(LIBSO_OBJ) src/lib/libferry.map
	$(CC) -shared -Wl,-soname,libferry.so -Wl,--version-script=src/lib/libferry.map -Wl,--no-undefined \
	    $(LDFLAGS) -o $@ $(LIBSO_OBJ) $(DEPS_LIBS)

$(FUSE_OBJ): CFLAGS += $(FUSE_CFLAGS)

$(B)/ferry: $(CLI_OBJ) $(FUSE_OBJ) $(B)/libferry_core.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(FUSE_OBJ) $(B)/libferry_core.a $(FUSE_LIBS) $(DEPS_LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libferry_core.a tests/unit/tap.h $(wildcard tests/unit/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libferry_core.a $(DEPS_LIBS)

$(B)/tests/fuse/%: tests/unit/fuse/%.c $(FUSE_OBJ) $(B)/libferry_core.a tests/unit/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FUSE_CFLAGS) -Itests/unit -o $@ $< $(FUSE_OBJ) $(B)/libferry_core.a $(FUSE_LIBS) $(DEPS_LIBS)

unit: $(UNIT_BIN)
	@./tests/run-unit.sh $(B) $(UNIT_BIN)

# Everything under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/.
asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" build-asan/ferry build-asan/libferry.so unit

# libFuzzer harnesses (clang), each run briefly.
FUZZ_SECONDS ?= 20
fuzz:
	@./tests/run-fuzz.sh $(FUZZ_SECONDS)

integration: all
	@./tests/run-integration.sh

# The same integration suite against the ASan+UBSan worker: any memory or
# undefined-behaviour error aborts the worker and fails the test.
integration-asan: asan
	@FERRY_BIN=$(CURDIR)/build-asan/ferry ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./tests/run-integration.sh

deps:
	@./scripts/install-deps.sh

# What building and `make run` need: no test servers, no benchmark tools.
build-deps:
	@./scripts/install-deps.sh --build

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) asan
	$(MAKE) fuzz
	$(MAKE) integration
	$(MAKE) integration-asan

run: build-deps all
	@./scripts/run-demo.sh

bench: deps all
	@./bench/run.sh full

bench-quick: deps all
	@./bench/run.sh quick

lint:
	@./scripts/lint.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(call rwildcard,$(B)/obj,*.d)
