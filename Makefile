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

# Minutes of fuzzing, exhaustion, load and faults; prints the table of README "Reliability".
STRESS_ARGS ?=
stress: all
	$(NODE) build/regress/stress/stress.js $(STRESS_ARGS)

# A private gotd in the foreground with a sample repository (state in build/demo,
# or a fresh /tmp/gotd-demo-* directory when run as root); prints clone commands.
demo: all
	$(NODE) build/src/demo/main.js

# Installed layout: PREFIX/lib/gotd/{src,node_modules,package.json} is the runtime;
# the commands are small node scripts that load it by absolute path, so they work
# from any directory and under any name (git-upload-pack -> gotsh symlinks).
LIBDIR = $(PREFIX)/lib/gotd
NODE_BIN = $$(readlink -f "$$(command -v $(NODE))")
wrapper = printf '\043!%s\n// gotd, installed by make install\nconst m = %s;\ntry { require.resolve(m); } catch { process.stderr.write(`%s: not available in this build of gotd (no $${m})\\n`); process.exit(1); }\nrequire(m);\n' \
	"$(NODE_BIN)" "'$(LIBDIR)/src/$(2)'" "$(notdir $(1))" > "$(DESTDIR)$(PREFIX)/$(1)" && chmod 755 "$(DESTDIR)$(PREFIX)/$(1)"

install: all
	@command -v $(NODE) >/dev/null || { echo "make install: $(NODE) not found" >&2; exit 1; }
	umask 022; set -e; \
	mkdir -p "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/sbin"; \
	rm -rf "$(DESTDIR)$(LIBDIR)/src" "$(DESTDIR)$(LIBDIR)/node_modules"; \
	cp -R build/src "$(DESTDIR)$(LIBDIR)/src"; \
	find "$(DESTDIR)$(LIBDIR)/src" -name '*.map' -exec rm -f {} +; \
	cp package.json "$(DESTDIR)$(LIBDIR)/package.json"; \
	root=$$(pwd -P); npm ls --omit=dev --parseable --all 2>/dev/null | sed -n "s|^$$root/node_modules/||p" | \
	  while read -r m; do mkdir -p "$(DESTDIR)$(LIBDIR)/node_modules/$$m" && cp -R "node_modules/$$m/." "$(DESTDIR)$(LIBDIR)/node_modules/$$m/"; done; \
	test -f "$(DESTDIR)$(LIBDIR)/node_modules/zod/package.json"; \
	$(call wrapper,sbin/gotd,gotd/main.js); \
	$(call wrapper,sbin/gotctl,gotctl/main.js); \
	$(call wrapper,bin/gotsh,gotsh/main.js); \
	$(call wrapper,bin/git-remote-ws,remote-ws/main.js); \
	$(call wrapper,bin/git-remote-wss,remote-ws/main.js); \
	for f in man/*.[158]; do [ -f "$$f" ] || continue; s=$${f##*.}; \
	  mkdir -p "$(DESTDIR)$(PREFIX)/share/man/man$$s" && cp "$$f" "$(DESTDIR)$(PREFIX)/share/man/man$$s/"; done; \
	mkdir -p "$(DESTDIR)$(PREFIX)/share/examples/gotd" && cp etc/* "$(DESTDIR)$(PREFIX)/share/examples/gotd/"; \
	chmod -R u=rwX,go=rX "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(PREFIX)/share/examples/gotd"

clean:
	rm -rf build src/sys/peercred/build

.PHONY: all check bench stress demo install clean
