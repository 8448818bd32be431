#!/usr/bin/env bash
# demo.sh TONEVAULT — what a compliance team sees: a call recording with a
# card number typed on the keypad, scanned, masked and scanned again.
set -euo pipefail
tv=${1:-bin/tonevault}
dir=$(mktemp -d "${TMPDIR:-/tmp}/tonevault-demo.XXXXXX")

echo "== Making a call recording in $dir"
espeak-ng -w "$dir/before.wav" "Hello, I would like to pay my bill. I will type my card number now."
espeak-ng -w "$dir/after.wav" "Done. Thank you very much."
# A test card number, typed as a customer would: 80 ms presses, 120 ms apart.
rate=$(soxi -r "$dir/before.wav")
"$tv" dtmf tones --rate "$rate" --on 80ms --off 120ms --level -12 "4111111111111111#" "$dir/keys.wav"
sox "$dir/before.wav" "$dir/keys.wav" "$dir/after.wav" -r 8000 -c 1 -e u-law "$dir/call.wav"

echo "== tonevault dtmf scan call.wav   (digits found: exit 1)"
"$tv" dtmf scan "$dir/call.wav" | tr '\n' ' ' || true
echo
echo "== tonevault dtmf mask call.wav masked.wav"
"$tv" dtmf mask "$dir/call.wav" "$dir/masked.wav"
echo "== tonevault dtmf scan masked.wav (clean: exit 0)"
"$tv" dtmf scan "$dir/masked.wav" && echo "no digits: the masked recording is clean"
echo
echo "Listen to $dir/call.wav and $dir/masked.wav (e.g. 'play' from sox)."
