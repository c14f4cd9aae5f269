#!/bin/sh
# Install the BullMQ benchmark's dependencies; honours package-lock.json when present.
# (`npm install`, not `npm ci`: the lock may lack other platforms' optional msgpackr-extract
# binaries, which makes `npm ci` refuse it.)
set -eu
cd "$(dirname "$0")"
npm install --no-audit --no-fund --omit-lockfile-registry-resolved
