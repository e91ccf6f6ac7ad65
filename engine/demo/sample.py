"""The built-in sample dataset: ~600 customer-support conversations for a fictional shop.

Generated, deterministic (seeded), license-clean. A few flaws are planted on purpose so that the Quality page has
something real to show; `PLANTED_FLAWS` documents each one with its 1-based line in the written JSONL file, and the
tests check that the quality report finds them there.

    studio sample OUT.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM_PROMPT = "You are the support assistant of Northwind Home, an online shop for furniture and kitchenware. Be brief, friendly and precise."

PRODUCTS = ["oak dining table", "linen sofa", "cast-iron skillet", "chef's knife", "bookshelf", "desk lamp", "wool rug",
            "coffee grinder", "bed frame", "office chair", "glass vase", "ceramic mug set", "bar stool", "wardrobe",
            "standing desk", "kettle", "toaster", "pillow set", "curtain pair", "shoe rack"]
CITIES = ["Leeds", "Bristol", "Glasgow", "Cardiff", "York", "Norwich", "Bath", "Oxford", "Dundee", "Exeter"]
NAMES = ["Sam", "Priya", "Jonas", "Maria", "Tom", "Aisha", "Lena", "Omar", "Grace", "Ivan", "Chen", "Nora"]

# (user templates, assistant template): every intent has several phrasings so that near-duplicates stay rare.
INTENTS = {
    "order_status": (
        ["Where is my order {order}?", "Can you tell me the status of order {order}?",
         "My order {order} has not arrived yet. What is going on?", "Has order {order} shipped?",
         "I ordered a {product} last week (order {order}). When will it come?"],
        "Order {order} left our warehouse on {day} and is with the courier. It should reach {city} within {n} working "
        "days. You can follow it with the tracking link in your confirmation email.",
    ),
    "return": (
        ["How do I return a {product}?", "I want to send back the {product} I bought.",
         "The {product} does not fit my room. Can I return it?", "What is your return policy for a {product}?"],
        "You can return the {product} within 30 days of delivery. Open Orders in your account, choose Return, and "
        "print the prepaid label. We refund you within {n} working days after the parcel reaches us.",
    ),
    "damaged": (
        ["My {product} arrived damaged.", "The {product} came broken. What can I do?",
         "There is a crack in the {product} I received today.", "My {product} was scratched on delivery."],
        "I am sorry the {product} arrived damaged. Please upload a photo of the damage and the box under Orders, Report "
        "a problem, and we will ship a replacement within {n} working days at no cost.",
    ),
    "refund": (
        ["When will I get my refund for the {product}?", "I returned a {product}. Where is my money?",
         "How long does a refund take?", "My refund for order {order} is missing."],
        "Refunds go back to the card you paid with within {n} working days after we receive the return. Your bank may "
        "need two more days to show it. If it is later than that, reply with the order number and we will check.",
    ),
    "password": (
        ["I forgot my password.", "How do I reset my password?", "I cannot log in to my account.",
         "The login page says my password is wrong."],
        "Choose Forgot password on the sign-in page and enter your email address. We send a reset link that works for "
        "one hour. If no email arrives within {n} minutes, check your spam folder.",
    ),
    "delivery_cost": (
        ["How much is delivery to {city}?", "Do you deliver to {city}?", "What does shipping cost for a {product}?",
         "Is delivery free?"],
        "Delivery to {city} is free for orders over 50 pounds and costs 4.95 pounds below that. Large items such as a "
        "{product} arrive by two-person courier within {n} working days.",
    ),
    "warranty": (
        ["Is the {product} under warranty?", "How long is the warranty on a {product}?",
         "My {product} stopped working after a year. Is it covered?"],
        "The {product} has a two-year warranty from the delivery date. Send us the order number and a short description "
        "of the fault, and we will repair or replace it within {n} working days.",
    ),
    "change_address": (
        ["Can I change the delivery address of order {order}?", "I moved to {city}. Can you update my order {order}?",
         "I typed the wrong address for order {order}."],
        "Yes, as long as order {order} has not shipped. Open Orders, choose Change address and enter the new address in "
        "{city}. If the order has already left, the courier lets you redirect it from the tracking page.",
    ),
    "cancel": (
        ["Please cancel order {order}.", "How do I cancel my order?", "I changed my mind about the {product}. Can I cancel?"],
        "You can cancel within two hours of ordering from Orders, Cancel order. After that the order is packed, and you "
        "can return the {product} for free once it arrives instead.",
    ),
    "stock": (
        ["When will the {product} be back in stock?", "Is the {product} available?", "The {product} is sold out. Will you restock?"],
        "The {product} is expected back in stock in about {n} weeks. Choose Notify me on the product page and we will "
        "email you the day it returns.",
    ),
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
GREETINGS = ["", "Hi, ", "Hello, ", "Good morning. ", "Hi there! ", "Hello team, "]
SIGN_OFFS = ["", " Thanks.", " Thank you!", " Please help.", " Thanks in advance.", " It is urgent."]
OPENERS = ["", "Thanks for getting in touch. ", "Happy to help. ", "Sorry for the trouble. ", "Good question. ",
           "Thank you for your patience. "]
CLOSERS = ["", " Anything else I can do for you?", " Have a lovely day.", " Let me know if that helps.",
           " We are here if you need more help.", " Thanks for shopping with Northwind Home."]

# 1-based JSONL line -> the flaw planted there (the tests read this table).
PLANTED_FLAWS: dict[str, list[int]] = {
    "exact_duplicate": [41, 42],          # copies of lines 11 and 12
    "near_duplicate": [61],               # line 31 with one word changed
    "contradiction": [81],                # line 71's question with a different answer
    "short_output": [101, 102],           # "ok" / "Yes."
    "pii": [121, 122],                    # an email address, a phone number
    "secret": [141],                      # an AWS access key id (the documented example key)
    "missing_system": [161, 162],
    "template_placeholder": [181],        # "{{customer_name}}"
    "ai_boilerplate": [201],              # "As an AI language model"
    "repetitive": [221],                  # one sentence repeated 40 times
    "language_mix": [241],                # a Spanish conversation
    "inconsistent_system_prompt": [261],  # an old system prompt
}


def slots(rng: random.Random) -> dict[str, str]:
    return {
        "order": f"NW-{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS),
        "city": rng.choice(CITIES),
        "day": rng.choice(DAYS),
        "n": str(rng.randint(2, 7)),
        "name": rng.choice(NAMES),
    }


def conversation(rng: random.Random) -> dict:
    intent = rng.choice(sorted(INTENTS))
    user_templates, answer_template = INTENTS[intent]
    values = slots(rng)
    question = rng.choice(GREETINGS) + rng.choice(user_templates).format(**values) + rng.choice(SIGN_OFFS)
    answer = rng.choice(OPENERS) + answer_template.format(**values) + rng.choice(CLOSERS)
    if rng.random() < 0.4:
        question = f"This is {values['name']}. {question}"
        answer = f"Hi {values['name']}! {answer}"
    return {"messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]}


def generate(n: int = 600, seed: int = 7) -> list[dict]:
    """The sample conversations with the planted flaws at the lines listed in PLANTED_FLAWS (when n reaches them)."""
    rng = random.Random(seed)
    rows = [conversation(rng) for _ in range(n)]
    if n < max(line for lines in PLANTED_FLAWS.values() for line in lines):
        return rows  # too short to hold the planted flaws: clean conversations only

    def at(line: int) -> dict:
        return rows[line - 1]

    def set_answer(line: int, text: str) -> None:
        at(line)["messages"][-1]["content"] = text

    def set_question(line: int, text: str) -> None:
        at(line)["messages"][1]["content"] = text

    rows[40] = json.loads(json.dumps(rows[10]))
    rows[41] = json.loads(json.dumps(rows[11]))
    near = json.loads(json.dumps(rows[30]))
    near["messages"][-1]["content"] = near["messages"][-1]["content"].replace("within", "in", 1) + " Thanks!"
    rows[60] = near
    contra = json.loads(json.dumps(rows[70]))
    contra["messages"][-1]["content"] = "We do not offer that. Please contact the manufacturer directly."
    rows[80] = contra
    set_answer(101, "ok")
    set_answer(102, "Yes.")
    set_question(121, "Please send the invoice to jane.doe@example.com instead of my old address.")
    set_question(122, "Call me back on +44 20 7946 0958 about order NW-44120, please.")
    set_question(141, "Our integration fails with key AKIAIOSFODNN7EXAMPLE. Can you check my order feed?")
    del at(161)["messages"][0]
    del at(162)["messages"][0]
    set_answer(181, "Hello {{customer_name}}, your refund is on its way and should arrive within 5 working days.")
    set_answer(201, "As an AI language model, I cannot see your order, but refunds usually take 5 working days.")
    set_answer(221, " ".join(["Please check your tracking link."] * 40))
    rows[240] = {"messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Hola, ¿cuándo llegará mi pedido NW-55231 a Sevilla? Lo pedí hace una semana."},
        {"role": "assistant", "content": "Tu pedido NW-55231 salió del almacén el lunes y llegará a Sevilla en unos cinco días laborables."},
    ]}
    at(261)["messages"][0]["content"] = "You are a helpful assistant."
    return rows


def write_sample(path: Path, n: int = 600, seed: int = 7) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in generate(n, seed):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def preference_pairs(n: int = 200, seed: int = 11) -> list[dict]:
    """Preference pairs from the sample conversations: the prompt, its own answer (chosen) and the answer to another
    conversation of the sample (rejected: fluent, but not an answer to this question). Learnable, as a model that reads
    the question can tell them apart."""
    rng = random.Random(seed)
    rows = [conversation(rng) for _ in range(n)]
    pairs = []
    for i, row in enumerate(rows):
        answer = row["messages"][-1]["content"]
        other = next(r["messages"][-1]["content"] for r in rows[i + 1:] + rows[:i]
                     if r["messages"][-1]["content"] != answer)
        pairs.append({"prompt": row["messages"][:-1], "chosen": answer, "rejected": other})
    return pairs


# The shop's house sign-off, and the one a model writes unprompted (SmolLM2-135M-Instruct gives the second the higher
# likelihood after every answer of the sample: bench/dpo.py --gain --pairs style).
HOUSE_SIGN_OFF, OTHER_SIGN_OFF = "Best wishes, the Northwind Home team", "Kind regards, Northwind Home support"


def style_pairs(n: int = 200, seed: int = 11) -> list[dict]:
    """Preference pairs that differ only in a house style: the same answer signed off the shop's way (chosen) or
    another way (rejected). The two sides are near ties under a base model, so what a preference run learns shows in
    their likelihoods at once, where the pairs of `preference_pairs` differ by whole answers of other lengths."""
    rng = random.Random(seed)
    rows = [conversation(rng) for _ in range(n)]
    return [{"prompt": row["messages"][:-1], "chosen": f"{row['messages'][-1]['content']}\n\n{HOUSE_SIGN_OFF}",
             "rejected": f"{row['messages'][-1]['content']}\n\n{OTHER_SIGN_OFF}"} for row in rows]
