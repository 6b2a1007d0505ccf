#!/usr/bin/env bash
# Regenerate the built-in speech set: utt01.flac … utt20.flac and transcripts.tsv in this folder.
#
# Why synthetic speech: the set must ship inside the package (a few MB at most), be free of licence and
# privacy questions, and run on an offline Pi. espeak-ng gives varied voices/speeds with text we control
# exactly, so the reference transcripts are correct by construction. The texts are Harvard sentences
# (IEEE 1969, public domain): phonetically balanced, plain common words that small Whisper models
# recognise well, so WER measures the device/runtime rather than the vocabulary. The sentence/voice/speed
# pairs were picked from a screen of ~90 sentences x 15 voices x 3 speeds so that Whisper tiny.en (greedy)
# transcribes the set at ~2% WER: robotic TTS is hard for small models, and a low clean baseline makes
# precision/quantisation regressions visible. Note: espeak-ng 1.51 ignores variants on "en-gb"
# ("en-gb+f4" sounds exactly like "en-gb"), so British variants are written "en+VARIANT".
#
# Reproducible with the same tool versions (made with eSpeak NG 1.51 and SoX 14.4.2): espeak-ng is
# deterministic, and sox runs with -D (no dither) so the 16-bit output does not depend on random noise.
#
# Pipeline per utterance: ../synthesize_utterance.sh (espeak-ng, then sox to 16 kHz mono FLAC).
#
# Usage: bash agent/datasets/builtin/make_builtin.sh
set -euo pipefail

cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "espeak-ng is required (apt-get install espeak-ng)" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox with FLAC support is required (apt-get install sox)" >&2; exit 1; }

# id|voice|words-per-minute|text   (long utterances join 2–5 sentences)
UTTERANCES=$(cat <<'LIST'
utt01|en-us|160|The fight will end in just six minutes.
utt02|en-gb|160|The pipe began to rust while new.
utt03|en-us+f3|160|Wipe the grease off his dirty face.
utt04|en+m3|180|Help the woman get back to her feet.
utt05|en+f2|160|The salt breeze came across from the sea.
utt06|en-gb-x-rp|180|Time brings us many changes.
utt07|en-us+f4|160|The ripe taste of cheese improves with age.
utt08|en-029|160|Take the winding path to reach the lake.
utt09|en-us+m7|180|Note closely the size of the gas tank.
utt10|en-us-nyc|160|We find joy in the simplest things.
utt11|en-gb-scotland|160|The juice of lemons makes fine punch.
utt12|en-us|180|The hogs were fed chopped corn and garbage.
utt13|en-us+m7|160|The hog crawled under the high fence.
utt14|en+m3|160|Hoist the load to your left shoulder.
utt15|en+f4|170|The ramp led up to the wide highway.
utt16|en-gb|150|The sky that morning was clear and bright blue. Once we stood beside the shore.
utt17|en-gb-scotland|140|The box was thrown beside the parked truck. The soft cushion broke the man's fall.
utt18|en+m3|140|The wrist was badly strained and hung limp. A cup of sugar makes sweet fudge. Say it slowly but make it ring clear.
utt19|en-gb-x-rp|140|The two met while playing on the sand. A rod is used to catch pink salmon. Use a pencil to write the first draft. These coins will be needed to pay his debt.
utt20|en-us|140|Rice is often served in round bowls. Draw the chart with heavy black lines. There are more than two factors here. Beat the dust from the rug onto the lawn. A small creek cut across the field.
LIST
)

printf 'id\tfile\tvoice\ttext\n' >transcripts.tsv
while IFS='|' read -r id voice wpm text; do
    [ -n "$id" ] || continue
    ../synthesize_utterance.sh "$id.flac" "$voice" "$wpm" 0 "$text"
    printf '%s\t%s\t%s\t%s\n' "$id" "$id.flac" "$voice" "$text" >>transcripts.tsv
    printf '%s  %5.2f s  %-14s %s\n' "$id" "$(soxi -D "$id.flac")" "$voice" "$text"
done <<<"$UTTERANCES"

du -ch ./*.flac | tail -n 1
