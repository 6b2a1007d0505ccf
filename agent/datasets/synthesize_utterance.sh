#!/usr/bin/env bash
# One utterance of a built-in speech set: espeak-ng -> 16 kHz mono 16-bit FLAC, shared by the sets'
# make scripts (builtin/make_builtin.sh, builtin_multilingual/make_builtin_multilingual.sh).
#
# espeak-ng -> 22.05 kHz WAV; sox -> 16 kHz mono 16-bit FLAC, leading/trailing silence trimmed to a fixed
# 0.2 s margin (so durations reflect the speech), peak-normalised to -1 dBFS (with 3 dB headroom before
# resampling so the rate filter's overshoot never clips). sox runs with -D (no dither), so the output does
# not depend on random noise: the same tool versions give the same bytes.
#
# Usage: synthesize_utterance.sh OUT.flac VOICE WORDS_PER_MINUTE WORD_GAP TEXT
#        (WORD_GAP: espeak-ng -g, pauses between words in units of 10 ms; 0 is espeak-ng's default)
set -euo pipefail
out=$1 voice=$2 wpm=$3 gap=$4 text=$5
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v "$voice" -s "$wpm" -g "$gap" -w "$tmp/speech.wav" "$text"
sox -D "$tmp/speech.wav" -c 1 -b 16 -C 8 "$out" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
    gain -n -3 rate -v 16k pad 0.2 0.2 gain -n -1
