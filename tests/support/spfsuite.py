"""The official SPF test suite (``rfc7208-tests.yml`` from pyspf's source distribution),
fetched with pip on first use and cached, and its zone data served over real DNS.

The suite is not committed: ``pip download --no-binary :all: pyspf==<installed>`` fetches
the sdist into ``$MILTERFILTERS_TEST_CACHE`` (default ``~/.cache/milterfilters-tests``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dnslib import RCODE

from tests.support.dnsserver import Reply, Zone, make_rr

CACHE = Path(os.environ.get("MILTERFILTERS_TEST_CACHE", Path.home() / ".cache" / "milterfilters-tests"))


def suite_file(name: str = "rfc7208-tests.yml") -> Path:
    """The suite file from the sdist of the installed pyspf, downloaded once."""
    version = importlib.metadata.version("pyspf")
    root = f"pyspf-{version}"
    target = CACHE / root / "test" / name
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"{root}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + [f"pyspf=={version}", "-d", str(CACHE)],
            check=True,
        )
    with tarfile.open(sdist) as tar:
        tar.extract(f"{root}/test/{name}", CACHE, filter="data")
    return target


@dataclass(frozen=True)
class SuiteCase:
    """One test of the suite with the zone data of its scenario."""

    id: str
    scenario: str
    spec: str
    host: str
    helo: str
    mailfrom: str
    results: tuple[str, ...]  # acceptable results, preferred first
    explanation: str | None
    zonedata: dict[str, list[Any]]
    strict: Any = True


def load_cases(path: Path) -> list[SuiteCase]:
    cases = []
    with path.open("rb") as f:
        for scenario in yaml.safe_load_all(f):
            for test_id, t in scenario["tests"].items():
                result = t["result"]
                cases.append(
                    SuiteCase(
                        id=test_id,
                        scenario=scenario.get("description", ""),
                        spec=str(t.get("spec", "")),
                        host=t["host"],
                        helo=t["helo"],
                        mailfrom=t["mailfrom"],
                        results=tuple(result) if isinstance(result, list) else (result,),
                        explanation=t.get("explanation"),
                        zonedata=scenario["zonedata"],
                        strict=t.get("strict", True),
                    )
                )
    return cases


class SuiteZone(Zone):
    """A scenario's ``zonedata`` with the suite's conventions (those of pyspf's testspf.py):

    * ``SPF`` records are also published as TXT unless the name has TXT entries
      (``TXT: NONE`` means "no TXT, and do not copy the SPF record"), after the others;
    * a ``TIMEOUT`` entry makes the name silent for every type not listed before it,
      ``TYPE: TIMEOUT`` for that type; unknown names under ``error.`` are silent too;
    * everything else is served as real records; a name that only holds a CNAME is
      answered by following the alias, as a recursive server would.

    One datum cannot be served as the suite writes it: a TXT record with no
    character-strings (``SPF: []`` in "null text"); RFC 1035 requires one or more
    and dnspython refuses such an answer, so it is served as one empty string.
    """

    def __init__(self, zonedata: dict[str, list[Any]]) -> None:
        super().__init__(default_ttl=300, negative_ttl=300)
        self.entries: dict[str, list[Any]] = {}
        for raw_name, items in zonedata.items():
            name = raw_name.lower().rstrip(".")
            has_txt = any(isinstance(i, dict) and "TXT" in i for i in items)
            entries: list[Any] = []
            generated: list[Any] = []
            for item in items:
                if item == "TIMEOUT":
                    entries.append("TIMEOUT")
                    continue
                ((rtype, value),) = item.items()
                if rtype in ("TXT", "SPF") and value == []:
                    value = [""]  # see the class docstring
                if value == "NONE":
                    continue
                entries.append((rtype, value))
                if value != "TIMEOUT":
                    self.add(name, rtype, value)
                if rtype == "SPF" and not has_txt:
                    generated.append(("TXT", value))
            for rtype, value in generated:
                entries.append((rtype, value))
                self.add(name, rtype, value)
            self.entries[name] = entries

    def lookup(self, qname: str, qtype: str) -> Reply | None:
        entries = self.entries.get(qname)
        if entries is None:
            return None if qname.startswith("error.") else super().lookup(qname, qtype)
        if any(e != "TIMEOUT" and e[0] == "CNAME" for e in entries):
            return super().lookup(qname, qtype)
        matched = False
        answer = []
        for entry in entries:
            if entry == "TIMEOUT":
                if not matched:
                    return None
                break
            rtype, value = entry
            if rtype != qtype:
                continue
            matched = True
            if value == "TIMEOUT":
                return None
            answer.append(make_rr(qname, rtype, value, self.default_ttl))
        if answer:
            return Reply(RCODE.NOERROR, tuple(answer))
        return Reply(RCODE.NOERROR, (), (self.soa(qname),))
