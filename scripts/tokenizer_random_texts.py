#!/usr/bin/env python3
"""Random texts for checking vkllm's tokenizers against llama.cpp.

    scripts/tokenizer_random_texts.py [--seed 7] [--count 10000] > texts.hex

Prints one text per line as hex (texts may hold any bytes, invalid UTF-8
included). Each text is a few random segments: ASCII words, contractions,
digit runs, punctuation, whitespace runs (spaces, tabs, CR/LF, Unicode
spaces), accented Latin and combining marks, Greek, Cyrillic, Arabic, Hebrew,
Devanagari, Thai, Hangul, kana, CJK (BMP and astral), emoji with ZWJ,
skin tones and variation selectors, symbols, special-token look-alikes,
random code points, and (in about a third of the texts) random bytes:
stray continuation bytes, truncated and overlong sequences, encoded
surrogates.

Left out, on purpose:
  - byte sequences that read as a code point above U+10FFFF (F4 90.., F5..F7
    leads): llama.cpp aborts on them (an uncaught exception in
    unicode_cpt_to_utf8), so there is nothing to compare with;
  - the 627 code points Unicode 15.1 added (CJK Extension I, U+2FFC..U+2FFF,
    U+31EF): llama.cpp's tables are Unicode 15.1, utf8proc 2.8's are 15.0, so
    they are letters or symbols to one and unassigned to the other.
The same seed gives the same texts on every machine (Python's random).
"""
import argparse
import random
import sys

SCRIPTS = [
    (0x00C0, 0x017F), (0x0180, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0530, 0x058F),
    (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0900, 0x097F), (0x0980, 0x09FF), (0x0B80, 0x0BFF),
    (0x0E00, 0x0E7F), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x3040, 0x309F),
    (0x30A0, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x20000, 0x2A6DF),
    (0x1D400, 0x1D7FF), (0x10400, 0x1044F),
]
SYMBOLS = [(0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x22FF), (0x2500, 0x27BF),
           (0x3000, 0x303F), (0xFE30, 0xFE4F), (0x00A1, 0x00BF)]
EMOJI = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
         (0x1FA70, 0x1FAFF), (0x2600, 0x26FF)]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\u00a0", "\u2003", "\u3000", "\u0085",
          "\u2028", "\u200b", "\u000b", "\u000c", " \t ", "    "]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "?!", "…", "。", "，", "、", "¿", "«", "»"]
SPECIALS = ["<|endoftext|>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|eot_id|>",
            "<|begin_of_text|>", "[INST]", "<|end|>", "<pad>", "<mask>", "<BOS_TOKEN>", "<|user|>"]
WORDS = ["the", "Hello", "world", "tokenizer", "don", "I", "we", "You", "LLaMA", "GPT", "über",
         "naïve", "café", "straße", "Ωμέγα", "привет", "мир", "東京", "日本語", "한국어", "مرحبا",
         "שלום", "नमस्ते", "ไทย", "abc123", "x", "A", "okay", "HTTP", "json", "print", "def", "return"]

# Unicode 15.1 additions: classified differently by llama.cpp (15.1) and utf8proc 2.8 (15.0)
NEW_IN_15_1 = [(0x2EBF0, 0x2EE5D), (0x2FFC, 0x2FFF), (0x31EF, 0x31EF)]


def ok_cpt(c):
    if 0xD800 <= c <= 0xDFFF:
        return False
    return not any(a <= c <= b for a, b in NEW_IN_15_1)


def rand_range(rng, ranges, n):
    out = []
    while len(out) < n:
        a, b = rng.choice(ranges)
        c = rng.randint(a, b)
        if ok_cpt(c):
            out.append(chr(c))
    return "".join(out)


def segment(rng):
    k = rng.random()
    if k < 0.14:
        w = rng.choice(WORDS)
        return w.upper() if rng.random() < 0.1 else w
    if k < 0.20:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(1, 12)))
    if k < 0.25:
        return rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "n't", "'"])
    if k < 0.33:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 14)))
    if k < 0.41:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))
    if k < 0.53:
        return "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 3)))
    if k < 0.64:
        return rand_range(rng, SCRIPTS, rng.randint(1, 8))
    if k < 0.68:  # letters with combining marks
        return "".join(rng.choice("aeiouAEOnc") + chr(rng.randint(0x300, 0x36F)) * rng.randint(1, 2)
                       for _ in range(rng.randint(1, 4)))
    if k < 0.74:
        e = rand_range(rng, EMOJI, 1)
        if rng.random() < 0.3:
            e += chr(rng.randint(0x1F3FB, 0x1F3FF))
        if rng.random() < 0.3:
            e += "\u200d" + rand_range(rng, EMOJI, 1)
        if rng.random() < 0.2:
            e += "\ufe0f"
        return e
    if k < 0.79:
        return rand_range(rng, SYMBOLS, rng.randint(1, 4))
    if k < 0.83:
        return rng.choice(SPECIALS)
    if k < 0.88:  # any code point at all, assigned or not
        out = ""
        while len(out) < rng.randint(1, 4):
            c = rng.randint(1, 0x10FFFF) if rng.random() < 0.5 else rng.randint(0x80, 0xFFFF)
            if ok_cpt(c):
                out += chr(c)
        return out
    if k < 0.92:  # Unicode digits and numbers of other scripts
        return rand_range(rng, [(0x0660, 0x0669), (0x0966, 0x096F), (0xFF10, 0xFF19), (0x2160, 0x217F),
                                (0x00B2, 0x00B3), (0x2460, 0x249B)], rng.randint(1, 5))
    return rng.choice(["\n", " ", "  ", "\t\t", "\r"]) + rng.choice(WORDS)


def bad_bytes(rng):
    k = rng.random()
    if k < 0.25:
        return bytes(rng.randint(0x80, 0xBF) for _ in range(rng.randint(1, 3)))  # stray continuations
    if k < 0.45:
        c = chr(rng.randint(0x80, 0xFFFF) if rng.random() < 0.5 else rng.randint(0x10000, 0x10FFFF))
        if not ok_cpt(ord(c)):
            c = "\u00e9"
        b = c.encode("utf-8")
        return b[:rng.randint(1, len(b) - 1)] if len(b) > 1 else b"\xc3"  # truncated
    if k < 0.6:
        return rng.choice([b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf"])  # overlong
    if k < 0.7:
        return bytes([0xED, rng.randint(0xA0, 0xBF), rng.randint(0x80, 0xBF)])  # surrogate
    if k < 0.8:
        return bytes([rng.choice([0xF8, 0xFC, 0xFE, 0xFF, 0xC0, 0xC1])])
    return bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 6)))


def too_big(b):
    """Whether llama.cpp reads a code point above U+10FFFF somewhere in B."""
    i = 0
    while i < len(b):
        c = b[i]
        if 0xF0 <= c < 0xF8 and i + 3 < len(b) and all(0x80 <= x < 0xC0 for x in b[i + 1:i + 4]):
            cp = ((c & 7) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F)
            if cp > 0x10FFFF:
                return True
            i += 4
            continue
        i += 1
    return False


def text(rng, with_bytes):
    parts = []
    for _ in range(rng.randint(1, 12)):
        if with_bytes and rng.random() < 0.25:
            parts.append(bad_bytes(rng))
        else:
            parts.append(segment(rng).encode("utf-8"))
    return b"".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=10000)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    n = 0
    while n < args.count:
        t = text(rng, rng.random() < 0.35)
        if too_big(t):
            continue
        sys.stdout.write(t.hex() + "\n")
        n += 1


if __name__ == "__main__":
    main()
