# gotd — see README.md.  `make check` is what CI runs (through .ci/run).
PREFIX ?= /usr/local
DESTDIR ?=
NODE ?= node
TSC = node_modules/.bin/tsc
TAP = node_modules/.bin/tap
# Test files to run (override: make check TESTS=build/regress/pktline.test.js)
TESTS ?= build/regress/*.test.js

# The SO_PEERCRED addon, built by the node-gyp inside npm, placed next to the JavaScript.
ADDON = build/src/sys/peercred/peercred.node

all: build/.stamp $(ADDON)

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

build/.stamp: node_modules/.package-lock.json tsconfig.json $(shell find src regress -name '*.ts' 2>/dev/null)
	$(TSC) -p tsconfig.json
	@touch $@

$(ADDON): src/sys/peercred/peercred.c src/sys/peercred/binding.gyp src/sys/peercred/build.sh
	NODE=$(NODE) sh src/sys/peercred/build.sh
	@mkdir -p $(dir $@)
	cp src/sys/peercred/build/Release/peercred.node $@

check: all
	$(TAP) --disable-coverage --timeout=900 --reporter=terse $(TESTS)

bench: all
	$(NODE) build/regress/bench/bench.js

demo:
	@echo "make demo: not yet — the daemon arrives with a later issue" >&2; exit 1

install:
	@echo "make install: not yet — the daemon arrives with a later issue" >&2; exit 1

clean:
	rm -rf build src/sys/peercred/build

.PHONY: all check bench demo install clean
