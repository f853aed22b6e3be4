"""Command line of the witness.

    python -m audit.witness keygen --key FILE --name NAME     # new Ed25519 key (0600), prints the vkey
    python -m audit.witness vkey --key FILE --name NAME       # prints the cosigner vkey again
    python -m audit.witness serve --listen HOST:PORT --name NAME --key FILE --state FILE --log VKEY [--log VKEY ...]

``serve`` prints ``listening on http://HOST:PORT`` once it accepts connections (with port 0,
the port the system chose). Exit status 2 for bad arguments or an unusable key or state file.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import Cosigner
from audit.note import NoteError
from audit.witness.server import MAX_BODY, MAX_CONNECTIONS, EventLog, Witness, WitnessHTTPServer, load_key, write_key
from audit.witness.state import StateError


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m audit.witness", description="A C2SP tlog-witness.")
    sub = p.add_subparsers(dest="command", required=True)
    for command, text in (("keygen", "create a witness key"), ("vkey", "print the witness's cosigner vkey")):
        s = sub.add_parser(command, help=text)
        s.add_argument("--key", type=Path, required=True, help="Ed25519 private key file (PKCS#8 PEM)")
        s.add_argument("--name", required=True, help="the witness name, e.g. witness.example.org/w1")
    s = sub.add_parser("serve", help="serve add-checkpoint, /latest and /healthz")
    s.add_argument("--listen", type=_listen, default=("127.0.0.1", 7380), help="HOST:PORT (default 127.0.0.1:7380)")
    s.add_argument("--name", required=True)
    s.add_argument("--key", type=Path, required=True)
    s.add_argument("--state", type=Path, required=True, help="state file (created on first use)")
    s.add_argument(
        "--log", action="append", required=True, metavar="VKEY",
        help="a log's signed-note verifier key; its name is the log origin (repeat for several logs or keys)",
    )
    s.add_argument("--max-body", type=int, default=MAX_BODY, help=f"largest request body (default {MAX_BODY})")
    s.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help=f"open connections at most; more are closed at once (default {MAX_CONNECTIONS})")
    return p


def _vkey(key: Ed25519PrivateKey, name: str) -> str:
    return str(Cosigner.from_key(name, key.public_key()))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "keygen":
            key = Ed25519PrivateKey.generate()
            vkey = _vkey(key, args.name)  # checks the name before anything is written
            write_key(args.key, key)
            print(vkey)
            return 0
        key = load_key(args.key)
        if args.command == "serve" and args.key.stat().st_mode & 0o077:
            print(f"warning: {args.key} is readable by other users; a witness key must stay private "
                  "(chmod 600)", file=sys.stderr)
        if args.command == "vkey":
            print(_vkey(key, args.name))
            return 0
        witness = Witness(name=args.name, key=key, log_vkeys=args.log, state_path=args.state, events=EventLog())
    except FileExistsError:
        print(f"{args.key} exists: a witness key is never overwritten", file=sys.stderr)
        return 2
    except (OSError, ValueError, NoteError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(witness, args.listen, args.max_body, args.max_connections)


def serve(
    witness: Witness, address: tuple[str, int], max_body: int = MAX_BODY, max_connections: int = MAX_CONNECTIONS
) -> int:
    if not witness.state.path.exists():
        print(f"warning: {witness.state.path} does not exist: starting with no memory of any log "
              "(right for a new witness; if it was lost, see docs/witness.md)", file=sys.stderr)
    server = WitnessHTTPServer(address, witness, max_body=max_body, max_connections=max_connections)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it runs on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"listening on http://{host}:{port}", flush=True)
    print(f"witness {witness.name} {witness.verifier_key} logs: {', '.join(sorted(witness.verifiers))}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        witness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
