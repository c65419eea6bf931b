"""How many bytes of relayed text a token takes, for the cut-short stream estimate (decision 0008).

Not part of `make bench`: it needs the `tokenizers` package and the tokenizer Anthropic published
with its Python SDK up to 0.38 (`anthropic/tokenizer.json`, the Claude 2 era BPE). Neither is a
dependency of the console; measure in a throwaway environment:

    uv venv /tmp/tok && uv pip install --python /tmp/tok/bin/python tokenizers "anthropic==0.38.0"
    /tmp/tok/bin/python bench/measure_stream_estimate.py \
        /tmp/tok/lib/python3.11/site-packages/anthropic/tokenizer.json

For each corpus: bytes per token overall and in the worst 256-byte slice (what a stream cut short
relays is such a slice), how often an estimate of ceil(bytes / k) tokens undercounts a slice for
k = 1..4, and how much k = 1 overcounts on average.
"""

import base64
import glob
import json
import math
import random
import re
import sys
from pathlib import Path

from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(sys.prefix) / "lib"


def corpora() -> dict[str, str]:
    random.seed(7)
    found = {
        "english prose": (ROOT / "README.md").read_text()
        + "".join(p.read_text() for p in sorted((ROOT / "docs").rglob("*.md"))),
        "python code": "".join(p.read_text() for p in sorted(ROOT.glob("*/*.py"))[:60]),
        "json (lockfile)": (ROOT / "tests/gateway/ts/package-lock.json").read_text(),
    }
    django_locale = glob.glob(str(ROOT / ".venv/lib/python*/site-packages/django/conf/locale"))
    for lang in ["zh_Hans", "ja", "ko", "ru", "ar", "hi", "th", "de", "el", "he"]:
        text = ""
        for po in glob.glob(f"{django_locale[0]}/{lang}/LC_MESSAGES/django.po"):
            strings = re.findall(r'^msgstr (".*")$', Path(po).read_text(encoding="utf-8"), re.M)
            text += "".join(json.loads(s) for s in strings if s != '""')
        found[f"translations {lang}"] = text
    found["digits"] = "".join(random.choice("0123456789") for _ in range(20000))
    found["hex"] = "".join(random.choice("0123456789abcdef") for _ in range(20000))
    found["base64"] = base64.b64encode(random.randbytes(15000)).decode()
    found["emoji"] = "".join(chr(random.randint(0x1F300, 0x1F64F)) for _ in range(3000))
    found["punctuation"] = "".join(
        random.choice("!?.,;:-_=+*/|()[]{}<>\"'`~^%$#@&") for _ in range(20000)
    )
    found["rare CJK ext-B"] = "".join(chr(random.randint(0x20000, 0x2A6DF)) for _ in range(3000))
    return found


def slices(text: str, size: int = 256, limit: int = 400) -> list[str]:
    out, current, length = [], [], 0
    for char in text:
        current.append(char)
        length += len(char.encode())
        if length >= size:
            out.append("".join(current))
            current, length = [], 0
            if len(out) == limit:
                break
    return out


def main() -> None:
    tokenizer = Tokenizer.from_file(sys.argv[1])

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    print(f"{'corpus':24s} {'bytes':>7s} {'tokens':>7s} {'B/tok':>6s} {'worst':>6s}  "
          "undercounted slices % for k=1,2,3,4   k=1 overcount")  # fmt: skip
    for name, text in corpora().items():
        size, tokens = len(text.encode()), count(text)
        measured = [(len(s.encode()), count(s)) for s in slices(text)]
        worst = min(b / t for b, t in measured if t)
        under = [100 * sum(math.ceil(b / k) < t for b, t in measured) / len(measured)
                 for k in (1, 2, 3, 4)]  # fmt: skip
        print(f"{name:24s} {size:7d} {tokens:7d} {size / tokens:6.2f} {worst:6.2f}  "
              + " ".join(f"{u:5.1f}" for u in under) + f"   x{size / tokens:.2f}")  # fmt: skip
    vocab = tokenizer.get_vocab()
    empty = sorted(t for t, i in vocab.items() if tokenizer.decode([i]) == "")
    print(f"vocabulary {len(vocab)} tokens; decoding to no text: {empty}")


if __name__ == "__main__":
    main()
