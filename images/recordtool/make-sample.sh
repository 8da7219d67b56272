#!/bin/sh
# Write the fixed 30-byte sample record to standard output, byte by byte (octal escapes), so the
# file is the same little-endian record whatever machine runs this script:
#   magic 0x5243, id 3735928559 (0xdeadbeef), value -1234567890123456789,
#   reading -21.375, name "probe-7".
set -eu
printf '\103\122'                              # u16 magic   0x5243
printf '\357\276\255\336'                      # u32 id      0xdeadbeef
printf '\353\176\026\202\013\357\335\356'      # i64 value   -1234567890123456789
printf '\000\000\000\000\000\140\065\300'      # f64 reading -21.375
printf '\160\162\157\142\145\055\067\000'      # name        "probe-7" NUL-padded to 8 bytes
