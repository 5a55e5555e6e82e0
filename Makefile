# jobq: a job queue engine inside PostgreSQL (PGXS).
#
#   make && sudo make install     build and install the extension
#   make test                     every test suite, ending "N passed, N failed"
#   make demo                     the main job on a throwaway cluster under demo/
#   make bench                    benchmarks (see bench/README.md)

EXTENSION = jobq
# The version lives in jobq.control only.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" jobq.control)

MODULE_big = jobq
OBJS = src/jobq.o src/shared.o src/ids.o src/tenant.o src/util.o src/errors.o src/registry.o \
       src/api.o src/worker.o src/dispatch.o src/http.o src/store.o src/checkpoint.o src/units.o src/notify.o src/metrics.o src/provider.o src/call.o src/notifier.o src/claims.o src/dropdb.o

DATA = $(wildcard sql/jobq--*.sql)

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -DJOBQ_VERSION=\"$(EXTVERSION)\" -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
            -Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK = -lcurl

REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --temp-config=test/jobq.conf --load-extension=jobq
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-config=test/jobq.conf --load-extension=jobq

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# jobq-gateway: the WebSocket bridge for browsers (gateway/, its own Makefile)
all: gateway
gateway:
	$(MAKE) -C gateway
clean: clean-gateway
clean-gateway:
	$(MAKE) -C gateway clean
.PHONY: gateway clean-gateway

# PGXS does not track header dependencies: rebuild everything when one changes.
$(OBJS): $(wildcard src/*.h)

.PHONY: test demo bench deps check-version fuzz-test valgrind-test

deps:
	./test/deps.sh

test: deps
	./test/run.sh

demo: deps
	./demo/run.sh

# peers on this machine (BENCH_PEERS=0 skips them), the SQL API against raw SQL, the in-server
# figures; about an hour in all, see bench/README.md
bench: deps
	@if [ "$${BENCH_PEERS:-1}" = 1 ]; then ./bench/peers.sh; else rm -f bench/out/peers-latest.tsv; fi
	./bench/run.sh
	./bench/inserver.sh

fuzz-test: deps
	./test/fuzz/run.sh

# the regress and pgTAP suites and some fuzzing against a server under valgrind (slow)
valgrind-test: deps
	./test/valgrind/run.sh

check-version:
	@grep -q '"version": "$(EXTVERSION)"' META.json || { echo "META.json does not say version $(EXTVERSION)"; exit 1; }
	@echo "version $(EXTVERSION) agrees"
