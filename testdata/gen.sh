#!/usr/bin/env bash
# gen.sh regenerates the test fixtures in this directory with ffmpeg's lavfi
# sources. Run it from anywhere: bash testdata/gen.sh
#
# fixture.flv: 10 s, H.264 Main 640x360 25 fps with B-frames (GOP 2 s) and
# AAC-LC 44.1 kHz stereo, muxed as FLV. See README.md for why each setting.
set -euo pipefail

cd "$(dirname "$0")"

command -v ffmpeg >/dev/null || { echo "gen.sh: ffmpeg not found (apt-get install ffmpeg)" >&2; exit 1; }

# -bitexact / -fflags +bitexact and -threads 1 keep the output byte-stable
# for a given ffmpeg build, so regenerating does not churn git needlessly.
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "testsrc2=size=640x360:rate=25:duration=10" \
	-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=10" \
	-map 0:v -map 1:a \
	-c:v libx264 -threads 1 -profile:v main -pix_fmt yuv420p \
	-preset veryfast -b:v 600k -maxrate 800k -bufsize 1200k \
	-g 50 -keyint_min 50 -sc_threshold 0 -bf 2 \
	-c:a aac -b:a 96k -ar 44100 -ac 2 \
	-fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
	-f flv fixture.flv.tmp
mv fixture.flv.tmp fixture.flv

echo "gen.sh: wrote $(pwd)/fixture.flv ($(stat -c %s fixture.flv) bytes)"
