"""Deliberately misbehaving witnesses, for tests only: ``python -m tests.bad_witness BEHAVIOUR serve ...``.

BEHAVIOUR is one of ``wrong_key``, ``lying_size``, ``slow`` (see tests/witnesses.py); the rest
of the command line is that of ``python -m audit.witness``. They wrap the shipped witness by
subclassing it, so the shipped witness has no flag that makes it misbehave.
"""
from __future__ import annotations

import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit.witness.__main__ as cli
from audit.cosignature import AddCheckpoint, ProtocolError, cosignature_line
from audit.witness.server import SIZE_CONTENT_TYPE, Answer, Witness, WitnessHTTPServer

SLOW_SECONDS = 3.0


class WrongKeyWitness(Witness):
    """Advertises its key but cosigns with another one."""

    _other = Ed25519PrivateKey.generate()

    def cosign(self, checkpoint_text: str, *, not_before: int = 0) -> str:
        return cosignature_line(checkpoint_text, name=self.name, key=self._other, timestamp=int(time.time()))


class LyingSizeWitness(Witness):
    """Claims, in a 409, a size it never cosigned (old + 1), and never cosigns anything."""

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            request = AddCheckpoint.parse(body)
        except ProtocolError:
            return super().add_checkpoint(body)
        return Answer(409, f"{request.old_size + 1}\n".encode(), SIZE_CONTENT_TYPE)


class SlowServer(WitnessHTTPServer):
    def before_answer(self, endpoint: str) -> None:
        time.sleep(SLOW_SECONDS)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"wrong_key", "lying_size", "slow"}:
        print("usage: python -m tests.bad_witness wrong_key|lying_size|slow serve ...", file=sys.stderr)
        return 2
    behaviour, rest = argv[0], argv[1:]
    if behaviour == "wrong_key":
        cli.Witness = WrongKeyWitness  # type: ignore[misc]
    elif behaviour == "lying_size":
        cli.Witness = LyingSizeWitness  # type: ignore[misc]
    else:
        cli.WitnessHTTPServer = SlowServer  # type: ignore[misc]
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
