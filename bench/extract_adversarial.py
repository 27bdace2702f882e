"""Benchmark: answer extraction on adversarial completions (backtick runs, unclosed fences).

    python -m bench.extract_adversarial [--sizes 20000,40000,80000,262144] [--old]

Prints the seconds `collab.extract.code_block` takes per input size for three adversarial
shapes. `--old` also times the quadratic regex extraction used before (x4 per doubling; slow).
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from collab.extract import MAX_COMPLETION_CHARS, code_block

_OLD_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)

SHAPES = {
    "backticks": lambda n: "`" * n,
    "open fences": lambda n: ("```python\n" + "x" * 6) * (n // 16),
    "one line of fences": lambda n: "``` " * (n // 4) + "\n",
}


def _old_code_block(text: str) -> str | None:
    bodies = [m.group(2) for m in _OLD_FENCE.finditer(text) if m.group(1).lower() in {"", "py"}]
    return bodies[-1] if bodies else None


def _seconds(fn, text: str) -> float:
    start = time.perf_counter()
    fn(text)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=f"20000,40000,80000,{MAX_COMPLETION_CHARS}")
    parser.add_argument("--old", action="store_true", help="also time the old quadratic regex")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cap: MAX_COMPLETION_CHARS = {MAX_COMPLETION_CHARS}")
    for shape, make in SHAPES.items():
        for n in sizes:
            text = make(n)
            line = f"{shape:<20} {len(text):>8} chars  new {_seconds(code_block, text) * 1e3:8.2f} ms"
            if args.old:
                line += f"  old {_seconds(_old_code_block, text) * 1e3:10.1f} ms"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
