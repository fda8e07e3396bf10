# sluice — one non-recursive Makefile (STYLE.md "Build and tests").
#
#   make                  build every program into build/bin/
#   make test             install missing packages, build, run unit + integration + fuzz corpus
#   make MODE=asan test   the same under AddressSanitizer + UBSan (programs in build/asan/bin/)
#   make demo             install missing packages, build, start the demo
#   make fuzz             libFuzzer targets (clang) in build/fuzz/
#   V=1                   show the commands
#   O=DIR                 put all output under DIR instead of build/

MODE ?= release
O ?= build
OBJDIR := $(O)/$(MODE)
ifeq ($(MODE),release)
BINDIR := $(O)/bin
else
BINDIR := $(OBJDIR)/bin
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

CC := gcc
PKGS := libmicrohttpd hiredis jansson libcrypto libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -MMD -MP -Ishared -Iagent -Isamples/shortener -Iserver -Itui $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -lpthread -lm

ifeq ($(MODE),release)
MODE_CFLAGS := -O2
MODE_LDFLAGS :=
else ifeq ($(MODE),asan)
MODE_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
MODE_LDFLAGS := -fsanitize=address,undefined
else
$(error MODE must be release or asan, not '$(MODE)')
endif

ALL_CFLAGS := $(BASE_CFLAGS) $(MODE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(MODE_LDFLAGS) $(LDFLAGS)

.PHONY: all deps test unit integration fuzz-replay fuzz demo bench clean format
all: programs

# --- components: each is a static library plus a thin main.c -------------------------
SHARED_SRC := $(wildcard shared/*.c)
SHARED_LIB := $(OBJDIR)/libshared.a

SHORTENER_SRC := $(filter-out samples/shortener/main.c,$(wildcard samples/shortener/*.c))
SHORTENER_LIB := $(OBJDIR)/libshortener.a

AGENT_SRC := $(filter-out agent/main.c,$(wildcard agent/*.c))
AGENT_LIB := $(OBJDIR)/libagent.a

SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
SERVER_LIB := $(OBJDIR)/libserver.a

TUI_SRC := $(filter-out tui/main.c,$(wildcard tui/*.c))
TUI_LIB := $(OBJDIR)/libtui.a
CURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null)
CURSES_LIBS := $(shell pkg-config --libs ncursesw 2>/dev/null)

# Component libraries, most dependent first (link order). The control plane links the
# agent's library for the policy validation it shares with the agents.
COMPONENT_LIBS := $(SHORTENER_LIB) $(SERVER_LIB) $(AGENT_LIB) $(SHARED_LIB)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SHARED_LIB): $(SHARED_SRC:%.c=$(OBJDIR)/%.o)
	$(Q)rm -f $@ && ar rcs $@ $^
$(SHORTENER_LIB): $(SHORTENER_SRC:%.c=$(OBJDIR)/%.o)
	$(Q)rm -f $@ && ar rcs $@ $^
$(AGENT_LIB): $(AGENT_SRC:%.c=$(OBJDIR)/%.o)
	$(Q)rm -f $@ && ar rcs $@ $^
$(SERVER_LIB): $(SERVER_SRC:%.c=$(OBJDIR)/%.o)
	$(Q)rm -f $@ && ar rcs $@ $^
$(TUI_LIB): $(TUI_SRC:%.c=$(OBJDIR)/%.o)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OBJDIR)/tui/term_curses.o: ALL_CFLAGS += $(CURSES_CFLAGS)

PROGRAMS := $(BINDIR)/sluice-shortener $(BINDIR)/sluice-agent $(BINDIR)/sluice-server $(BINDIR)/sluice \
	$(BINDIR)/sluice-worker $(BINDIR)/sluice-webhook-receiver $(BINDIR)/sluice-loadgen

WORKER_SRC := $(wildcard worker/*.c)
$(BINDIR)/sluice-worker: $(WORKER_SRC:%.c=$(OBJDIR)/%.o) $(SHORTENER_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(WORKER_SRC:%.c=$(OBJDIR)/%.o) $(SHORTENER_LIB) $(SHARED_LIB) $(LDLIBS)

LOADGEN_SRC := $(wildcard loadgen/*.c)
$(BINDIR)/sluice-loadgen: $(LOADGEN_SRC:%.c=$(OBJDIR)/%.o) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(LOADGEN_SRC:%.c=$(OBJDIR)/%.o) $(SHARED_LIB) $(LDLIBS)

$(BINDIR)/sluice: $(OBJDIR)/tui/main.o $(TUI_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TUI_LIB) $(SHARED_LIB) $(LDLIBS) $(CURSES_LIBS)

$(BINDIR)/sluice-server: $(OBJDIR)/server/main.o $(SERVER_LIB) $(AGENT_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(SERVER_LIB) $(AGENT_LIB) $(SHARED_LIB) $(LDLIBS)

$(BINDIR)/sluice-agent: $(OBJDIR)/agent/main.o $(AGENT_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(AGENT_LIB) $(SHARED_LIB) $(LDLIBS)

$(BINDIR)/sluice-shortener: $(OBJDIR)/samples/shortener/main.o $(COMPONENT_LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(COMPONENT_LIBS) $(LDLIBS)

$(BINDIR)/sluice-webhook-receiver: $(OBJDIR)/samples/webhook-receiver/main.o $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(SHARED_LIB) $(LDLIBS)

programs: $(PROGRAMS)

# --- tests ------------------------------------------------------------------------------
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(OBJDIR)/tests/%)

# Unit tests of shared/ link only libshared.a; a component's tests (listed here) also link
# that component's library. Every unit test links the test-support objects (TEST_SUPPORT:
# tests/unit/ files not named test_*.c, e.g. redis_fixture.c).
SHORTENER_UNIT := $(OBJDIR)/tests/test_link
TEST_SUPPORT := $(OBJDIR)/tests/unit/redis_fixture.o

$(OBJDIR)/tests/test_%: $(OBJDIR)/tests/unit/test_%.o $(TEST_SUPPORT) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(SHARED_LIB) $(LDLIBS) -lcmocka

$(SHORTENER_UNIT): $(OBJDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(TEST_SUPPORT) $(SHORTENER_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(SHORTENER_LIB) $(SHARED_LIB) $(LDLIBS) -lcmocka

AGENT_UNIT := $(OBJDIR)/tests/test_faults $(OBJDIR)/tests/test_spans $(OBJDIR)/tests/test_control $(OBJDIR)/tests/test_routes $(OBJDIR)/tests/test_stats $(OBJDIR)/tests/test_policy

$(AGENT_UNIT): $(OBJDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(TEST_SUPPORT) $(AGENT_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(AGENT_LIB) $(SHARED_LIB) $(LDLIBS) -lcmocka

SERVER_UNIT := $(OBJDIR)/tests/test_slo $(OBJDIR)/tests/test_traces $(OBJDIR)/tests/test_snapshot $(OBJDIR)/tests/test_queues

$(SERVER_UNIT): $(OBJDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(TEST_SUPPORT) $(SERVER_LIB) $(AGENT_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(SERVER_LIB) $(AGENT_LIB) $(SHARED_LIB) $(LDLIBS) -lcmocka

TUI_UNIT := $(OBJDIR)/tests/test_canvas $(OBJDIR)/tests/test_tui

$(TUI_UNIT): $(OBJDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(TEST_SUPPORT) $(TUI_LIB) $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(TUI_LIB) $(SHARED_LIB) $(LDLIBS) $(CURSES_LIBS) -lcmocka

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(OBJDIR)/tests/replay_%)

# Replay drivers: the fuzz target + a main() that feeds it every corpus file (gcc, no libFuzzer).
$(OBJDIR)/tests/replay_%: $(OBJDIR)/tests/fuzz/%.o $(OBJDIR)/tests/fuzz/replay.o $(SHARED_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

test: deps
	$(Q)$(MAKE) --no-print-directory programs $(UNIT_BINS) $(FUZZ_REPLAY_BINS)
	$(Q)tests/run.sh "$(OBJDIR)" "$(BINDIR)"

unit: $(UNIT_BINS)
	$(Q)tests/run.sh --only unit "$(OBJDIR)" "$(BINDIR)"

integration: programs
	$(Q)tests/run.sh --only integration "$(OBJDIR)" "$(BINDIR)"

# libFuzzer builds (clang): make fuzz, then build/fuzz/fuzz_jwt tests/fuzz/corpus/fuzz_jwt
FUZZ_OUT := $(O)/fuzz
fuzz:
	@mkdir -p $(FUZZ_OUT)
	$(Q)for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ishared $(PKG_CFLAGS) \
	    $$f $(SHARED_SRC) -o $(FUZZ_OUT)/$$n $(LDLIBS) || exit 1; echo "  FUZZ    $(FUZZ_OUT)/$$n"; done

deps:
	$(Q)scripts/install-deps

demo: deps
	$(Q)$(MAKE) --no-print-directory programs
	$(Q)scripts/demo "$(BINDIR)"

bench: programs
	$(Q)scripts/install-deps bench
	$(Q)bench/shortener.sh "$(BINDIR)"
	$(Q)bench/agent.sh "$(BINDIR)"
	$(Q)bench/ratelimit.sh "$(BINDIR)"
	$(Q)bench/cache.sh "$(BINDIR)"
	$(Q)bench/gateway.sh "$(BINDIR)"
	$(Q)bench/controlplane.sh "$(BINDIR)"
	$(Q)bench/tui.sh "$(BINDIR)"
	$(Q)bench/queue.sh "$(BINDIR)"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(O)

-include $(shell find $(OBJDIR) -name '*.d' 2>/dev/null)
