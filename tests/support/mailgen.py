"""Small synthetic mail for classifier tests (no corpus text in the repository)."""

from __future__ import annotations

import base64
import mailbox
import random
from pathlib import Path

HAM_WORDS = (
    "meeting agenda patch review release build schedule thanks regards minutes kernel "
    "compiler notes draft lunch tomorrow question config branch merge commit ticket"
).split()
SPAM_WORDS = (
    "free money offer winner click limited guaranteed cash prize credit viagra cheap "
    "discount urgent million bonus act now investment casino"
).split()


def ham_message(rng: random.Random, i: int) -> bytes:
    words = " ".join(rng.choice(HAM_WORDS) for _ in range(rng.randint(30, 80)))
    return (
        f"From: Alice Example <alice{i % 7}@lists.example.org>\n"
        f"To: dev@lists.example.org\n"
        f"Subject: Re: {rng.choice(HAM_WORDS)} {rng.choice(HAM_WORDS)}\n"
        f"Date: Tue, 0{1 + i % 9} Jul 2024 10:00:00 +0200\n"
        f"Message-ID: <{i}.{rng.randint(0, 10**6)}@lists.example.org>\n"
        f"User-Agent: Mutt/2.2\n"
        f"Content-Type: text/plain; charset=us-ascii\n\n"
        f"Hi all,\n\n{words}\n\n-- \nAlice\n"
    ).encode()


def spam_message(rng: random.Random, i: int) -> bytes:
    words = " ".join(rng.choice(SPAM_WORDS) for _ in range(rng.randint(20, 60)))
    html = (
        f"<html><body><font color=red><b>{words.upper()}</b></font>"
        f'<a href="http://{rng.choice(SPAM_WORDS)}-deals{i % 5}.example.biz/x?id={i}">CLICK HERE</a>'
        f"</body></html>"
    )
    body = base64.encodebytes(html.encode()).decode()
    return (
        f"From: winner{rng.randint(100, 999)}@bulk{i % 3}.example.biz\n"
        f"To: undisclosed-recipients:;\n"
        f"Subject: {rng.choice(SPAM_WORDS).upper()} {rng.choice(SPAM_WORDS)}!!!\n"
        f"Date: Tue, 0{1 + i % 9} Jul 2024 10:00:00 +0200\n"
        f"Message-ID: <{rng.randint(0, 10**9)}@mailer{i}.example.net>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/html; charset=iso-8859-1\n"
        f"Content-Transfer-Encoding: base64\n\n{body}"
    ).encode()


def make_messages(kind: str, n: int, seed: int) -> list[bytes]:
    rng = random.Random(f"{kind}-{seed}")
    make = ham_message if kind == "ham" else spam_message
    return [make(rng, i) for i in range(n)]


def write_folder(path: Path, messages: list[bytes]) -> Path:
    path.mkdir(parents=True)
    for i, raw in enumerate(messages):
        (path / f"{i:05d}.eml").write_bytes(raw)
    return path


def write_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(str(path), create=True)
    for raw in messages:
        box.add(raw)
    return path


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path), create=True)
    for raw in messages:
        box.add(raw)
    box.close()
    return path
