"""Write spark_tui/data/prompts.jsonl: the bundled prompt set with reference answers.

Short arithmetic and factual questions whose answers the default model can learn to give in
`<answer>` tags: the default data for online RL (GRPO) with the exact-match, numeric-match
and format rewards (core/method/rewards.py).  Deterministic (a fixed seed): run it again
and the file is the same.  `python scripts/make_prompt_set.py`
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "spark_tui" / "data" / "prompts.jsonl"
ASK = "Give only the answer, inside <answer></answer> tags."

# (question, answer): general knowledge with one short, settled answer.
FACTS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Kenya?", "Nairobi"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the capital of Portugal?", "Lisbon"),
    ("What is the capital of Greece?", "Athens"),
    ("How many days are in a week?", "7"),
    ("How many months are in a year?", "12"),
    ("How many hours are in a day?", "24"),
    ("How many minutes are in an hour?", "60"),
    ("How many seconds are in a minute?", "60"),
    ("How many legs does a spider have?", "8"),
    ("How many legs does an insect have?", "6"),
    ("How many sides does a triangle have?", "3"),
    ("How many sides does a hexagon have?", "6"),
    ("How many sides does an octagon have?", "8"),
    ("How many continents are there?", "7"),
    ("How many centimetres are in a metre?", "100"),
    ("How many grams are in a kilogram?", "1000"),
    ("How many metres are in a kilometre?", "1000"),
    ("At what temperature in Celsius does water freeze at sea level?", "0"),
    ("At what temperature in Celsius does water boil at sea level?", "100"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the chemical symbol for iron?", "Fe"),
    ("What is the chemical symbol for sodium?", "Na"),
    ("What is the chemical symbol for oxygen?", "O"),
    ("What is the chemical formula of water?", "H2O"),
    ("Which planet is closest to the Sun?", "Mercury"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the largest planet in the Solar System?", "Jupiter"),
    ("What gas do plants take in for photosynthesis?", "carbon dioxide"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"),
    ("What colour do you get by mixing blue and yellow?", "green"),
    ("What colour do you get by mixing red and white?", "pink"),
    ("What is the first letter of the English alphabet?", "A"),
    ("What is the last letter of the English alphabet?", "Z"),
    ("How many letters are in the English alphabet?", "26"),
    ("What is the square root of 81?", "9"),
    ("What is the square root of 144?", "12"),
    ("What is 10 squared?", "100"),
    ("What is half of 50?", "25"),
    ("What is a quarter of 100?", "25"),
    ("What is double 35?", "70"),
]


def arithmetic(rng: random.Random, n: int) -> list[tuple[str, str]]:
    rows, seen = [], set()
    while len(rows) < n:
        op = rng.choice("+-*")
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        if op == "*":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        if op == "-" and b > a:
            a, b = b, a
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        value = a + b if op == "+" else a - b if op == "-" else a * b
        shown = {"+": "plus", "-": "minus", "*": "times"}[op]
        rows.append((f"What is {a} {shown} {b}?", str(value)))
    return rows


def main() -> None:
    rng = random.Random(17)
    rows = arithmetic(rng, 150) + FACTS
    rng.shuffle(rows)
    lines = [json.dumps({"prompt": f"{q} {ASK}", "answer": a}) for q, a in rows]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(lines)} rows")


if __name__ == "__main__":
    main()
