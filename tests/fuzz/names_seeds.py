#!/usr/bin/env python3
"""Writes the seed inputs of the `names` fuzz target (fuzz_names.cpp) into a directory: byte 0
holds options (bit 0: CUDA target, bit 1: no If, bit 2: a StringNormalizer too), then 22
names, each a length byte and its bytes, in the target's slot order (input, dim, cond, init,
sum, mid, then_out, else_out, output, add/relu/if/neg/id node, then/else/main graph, string
input, string output, StringNormalizer node, two stopwords). Usage: names_seeds.py <dir>"""
import os
import sys

HOSTILE = [
    b'x"); abort(); ("', b'b"at\\ch */ \n??/', b"int", b"W\\", b"t */ /*", b"return",
    b"ctx", b"S", b"y \xff\xfe\x80 \t\r\v\f \"end\"", b"add */ int evil; /* \\\n#error x",
    b"??= ??/ %s%n%s%n", b"if\nreturn 1;//", b"neg */\n", b"id\\", b"then */ \"\n", b"else\\",
    b"g ??/", b"s\\", b"s_out\n*/", b"sn ??/", b"stop\"word\\", b"??/\n",
]
KILN_LOCALS = [b"st", b"S0", b"ins", b"outs", b"kiln_kernel_0", b"desc", b"i", b"n", b"out",
               b"kiln_model_desc", b"buf0", b"ws", b"args", b"nullptr", b"main", b"ctx", b"_",
               b"s0", b"p", b"inputs", b"s1", b"outputs"]
ESCAPES = [b"\\", b"\\\\", b"\"", b"'", b"\\x41", b"\\0", b"\\777", b"??/", b"??'", b"*/",
           b"/*", b"//", b"\n", b"\r\n", b"\x00", b"\x7f", b"\xc3\x28", b"\t", b"%s", b"%n",
           b"{}", b"\\n"]
TRAILING = [n + b"\\" for n in (b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"o", b"p",
                                 b"q", b"r", b"s", b"u", b"v", b"w", b"z", b"j", b"k", b"l",
                                 b"m", b"y")]
TRIGRAPH = [n + b"??/" for n in (b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"o", b"p",
                                 b"q", b"r", b"s", b"u", b"v", b"w", b"z", b"j", b"k", b"l",
                                 b"m", b"y")]
UTF8 = ["α", "名前", "\u202e", "\ufeffbom", "x\u0301", "€", "😀", "\u2028", "ß", "ı", "ǅ",
        "ﬁ", "Ω", "\u00a0", "\u200b", "⁄", "∗/", "ü", "中", "\u0000x", "é", "ø"]


def case(opts, names):
    return bytes([opts]) + b"".join(bytes([len(n)]) + n for n in names)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    sets = {"hostile": HOSTILE, "locals": KILN_LOCALS, "escapes": ESCAPES,
            "trailing": TRAILING, "trigraph": TRIGRAPH, "utf8": [u.encode() for u in UTF8],
            "nul": [b"x\x00y", b"d\x00"] + HOSTILE[2:20] + [b"a\x00b", b"\x00"]}
    for name, names in sets.items():
        for opts, suffix in ((0, "cpu"), (2, "cpu_noif"), (1, "cuda"), (3, "cuda_noif"),
                             (4, "cpu_strings"), (6, "cpu_noif_strings")):
            with open(os.path.join(out, f"seed_{name}_{suffix}"), "wb") as f:
                f.write(case(opts, names))


if __name__ == "__main__":
    main()
