#!/bin/sh
# Builds peercred.node with the node-gyp that ships inside npm, against the
# headers of the node that runs gotd (no download: --nodedir points at them).
set -eu
cd "$(dirname "$0")"
NODE=${NODE:-node}

gyp=
for c in \
    "$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js" \
    "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js" \
    "$(dirname "$(readlink -f "$(command -v npm)")")/node_modules/node-gyp/bin/node-gyp.js"; do
	if [ -f "$c" ]; then gyp=$c; break; fi
done
if [ -z "$gyp" ]; then
	if command -v node-gyp >/dev/null; then gyp=$(command -v node-gyp)
	else echo "peercred: node-gyp not found (it ships with npm)" >&2; exit 1; fi
fi

nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
case "$nodedir" in ""|undefined|null)
	nodedir=$($NODE -p 'require("path").resolve(process.execPath, "..", "..")') ;;
esac
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
	echo "peercred: no Node headers in $nodedir/include/node (install the nodejs headers or set npm_config_nodedir)" >&2
	exit 1
fi
exec $NODE "$gyp" rebuild --nodedir="$nodedir" --loglevel=warn
