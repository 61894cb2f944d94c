import mailbox
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_mbox_summary_example(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "test.mbox")
    box.add(b"From: a@example.org\nSubject: hi\n\nhello\n")
    box.add(f"From: b@example.org\nSubject: spam\n\n{GTUBE}\n".encode())
    box.add(b"From: c@example.org\nSubject: again\n\nhello again\n")
    box.flush()
    r = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "examples" / "summarize_mbox.py"), str(tmp_path / "test.mbox")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "3 messages" in r.stdout
    lines = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[1:] if line.startswith("  ")}
    assert lines["accept"] == "2" and lines["reject"] == "1" and lines["GTUBE"] == "1"
