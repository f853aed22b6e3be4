"""CI attestations: in-toto statements in DSSE envelopes or Sigstore bundles, verified for a promotion gate.

Pure: no Django, no database, no network. Three steps, each with its own refusal:

1. ``parse_document(raw)`` at upload: the bytes must be one JSON object, either a DSSE envelope
   (``{"payloadType": "application/vnd.in-toto+json", "payload": b64, "signatures": [{"keyid", "sig"}]}``)
   or a Sigstore bundle (``application/vnd.dev.sigstore.bundle…``) carrying such an envelope, whose
   payload is an in-toto Statement v1. Nothing is trusted yet: parsing only extracts what is shown and
   indexed (predicate type, subject digests, key ids).
2. ``parse_trusted_signers(doc)`` at policy parse time: named public keys (Ed25519 or ECDSA P-256, PEM)
   and Sigstore identities (OIDC issuer + certificate SAN, exact).
3. ``check_gate(...)`` at gate evaluation: for every stored document, verify its signature against the
   gate's signers (DSSE PAE; Sigstore offline against a configured trusted root), then the statement's
   predicate type, its subject digest against the version's artifact digest, and the predicate conditions.

The DSSE signature is checked here with ``cryptography`` directly rather than through
securesystemslib's ``Envelope.verify``: that answers a threshold yes/no, while a gate must say *why*
(untrusted key, signature does not verify) per document; the PAE is a one-line encoding (tested against
envelopes securesystemslib signs). Sigstore bundles go through sigstore-python's ``Verifier``, which
verifies the certificate chain, the signed timestamp or inclusion promise and the Rekor inclusion proof
entirely offline from the trusted root file.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
TEST_RESULT_V01 = "https://in-toto.io/attestation/test-result/v0.1"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
KIND_DSSE = "dsse"
KIND_SIGSTORE = "sigstore_bundle"
#: More signatures than this on one envelope is refused at upload (each is tried against every key).
MAX_SIGNATURES = 8
MAX_SUBJECTS = 64
MAX_SIGNERS = 32
SIGNER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TEST_RESULTS = ("PASSED", "WARNED", "FAILED")


class AttestationError(ValueError):
    """A document or a trusted-signer entry is malformed (the message says what is wrong)."""


# --- documents -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """What an uploaded document says about itself (unverified)."""

    kind: str
    sha256: str
    payload_type: str
    payload: bytes
    #: (keyid, signature bytes) of a DSSE envelope; a bundle's single signature has keyid "".
    signatures: tuple[tuple[str, bytes], ...]
    statement: Mapping[str, Any]
    predicate_type: str
    #: ``sha256:<hex>`` of every subject that has a sha256 digest (others are kept out: never compared).
    subject_digests: tuple[str, ...]
    #: Key ids named by the envelope (hints only: never trusted); a bundle: its certificate's SHA-256.
    key_ids: tuple[str, ...]
    #: The bundle's JSON text (sigstore-python parses it again at verification).
    bundle_json: str = ""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _b64(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE implementations emit both)."""
    if not isinstance(value, str) or not value:
        raise AttestationError(f"{what} must be a non-empty base64 string")
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError(f"{what} is not valid base64") from None


def _parse_statement(payload: bytes) -> tuple[Mapping[str, Any], str, tuple[str, ...]]:
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise AttestationError("the envelope's payload is not JSON (an in-toto Statement)") from None
    if not isinstance(statement, dict):
        raise AttestationError("the envelope's payload must be an in-toto Statement object")
    if statement.get("_type") != STATEMENT_V1:
        raise AttestationError(f"the statement's _type must be {STATEMENT_V1!r}")
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise AttestationError("the statement has no predicateType")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise AttestationError("the statement must have at least one subject")
    if len(subjects) > MAX_SUBJECTS:
        raise AttestationError(f"the statement has more than {MAX_SUBJECTS} subjects")
    digests: list[str] = []
    for i, subject in enumerate(subjects):
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            raise AttestationError(f"subject[{i}] must be an object with a 'digest' object")
        sha = subject["digest"].get("sha256")
        if sha is None:
            continue
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise AttestationError(f"subject[{i}]'s sha256 digest must be 64 hex digits")
        digests.append(f"sha256:{sha.lower()}")
    return statement, predicate_type, tuple(dict.fromkeys(digests))


def _parse_envelope(doc: Mapping[str, Any]) -> tuple[str, bytes, tuple[tuple[str, bytes], ...]]:
    payload_type = doc.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(f"the envelope's payloadType must be {IN_TOTO_PAYLOAD_TYPE!r}")
    payload = _b64(doc.get("payload"), "the envelope's payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise AttestationError("the envelope is unsigned: 'signatures' must list at least one signature")
    if len(sigs) > MAX_SIGNATURES:
        raise AttestationError(f"the envelope has more than {MAX_SIGNATURES} signatures")
    out = []
    for i, sig in enumerate(sigs):
        if not isinstance(sig, dict):
            raise AttestationError(f"signatures[{i}] must be an object with 'sig'")
        keyid = sig.get("keyid", "")
        if not isinstance(keyid, str) or len(keyid) > 200:
            raise AttestationError(f"signatures[{i}].keyid must be a string")
        out.append((keyid, _b64(sig.get("sig"), f"signatures[{i}].sig")))
    return payload_type, payload, tuple(out)


def parse_document(raw: bytes) -> Document:
    """Parse an uploaded DSSE envelope or Sigstore bundle (AttestationError names what is wrong)."""
    try:
        # UTF-8 only (RFC 8259 §8.1): json.loads would also take UTF-16/32, which the stored text cannot be.
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AttestationError("the body is not UTF-8 JSON: send the DSSE envelope or Sigstore bundle as it "
                               "is") from None
    if not isinstance(doc, dict):
        raise AttestationError("the body must be a JSON object: a DSSE envelope or a Sigstore bundle")
    sha = hashlib.sha256(raw).hexdigest()
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith(SIGSTORE_BUNDLE_PREFIX):
        return _parse_bundle(raw, doc, sha)
    if "payloadType" not in doc:
        raise AttestationError("neither a DSSE envelope (payloadType, payload, signatures) nor a Sigstore "
                               f"bundle (mediaType {SIGSTORE_BUNDLE_PREFIX}…)")
    payload_type, payload, signatures = _parse_envelope(doc)
    statement, predicate_type, digests = _parse_statement(payload)
    return Document(kind=KIND_DSSE, sha256=sha, payload_type=payload_type, payload=payload, signatures=signatures,
                    statement=statement, predicate_type=predicate_type, subject_digests=digests,
                    key_ids=tuple(dict.fromkeys(k for k, _ in signatures if k)))


def _parse_bundle(raw: bytes, doc: Mapping[str, Any], sha: str) -> Document:
    # Imported here: sigstore pulls in pydantic models and TUF, which only bundle uploads need.
    from sigstore.models import Bundle

    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise AttestationError("the Sigstore bundle carries no DSSE envelope: only attestations (an in-toto "
                               "statement, as `gh attestation`/`cosign attest` make) are accepted, not blob signatures")
    payload_type, payload, signatures = _parse_envelope(envelope)
    if len(signatures) != 1:
        raise AttestationError("a Sigstore bundle's envelope must have exactly one signature")
    statement, predicate_type, digests = _parse_statement(payload)
    try:
        bundle = Bundle.from_json(raw)
    except Exception as exc:  # sigstore raises several kinds (pydantic, its own, cryptography's) for bad input
        raise AttestationError(f"not a valid Sigstore bundle: {str(exc)[:200]}") from None
    cert = bundle.signing_certificate.fingerprint(hashes.SHA256()).hex()
    return Document(kind=KIND_SIGSTORE, sha256=sha, payload_type=payload_type, payload=payload,
                    signatures=signatures, statement=statement, predicate_type=predicate_type,
                    subject_digests=digests, key_ids=(f"x509-sha256:{cert}",), bundle_json=raw.decode())


# --- trusted signers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySigner:
    name: str
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    #: Informational (shown with the evidence); verification tries the key whatever keyid a signature names.
    keyid: str = ""

    @property
    def fingerprint(self) -> str:
        der = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class SigstoreSigner:
    name: str
    issuer: str
    identity: str


Signer = KeySigner | SigstoreSigner


def parse_trusted_signers(doc: Any) -> dict[str, Signer]:
    """``{"name": {"public_key": PEM, "keyid"?: str} | {"sigstore": {"issuer", "identity"}}}``."""
    if not isinstance(doc, Mapping):
        raise AttestationError("'trusted_signers' must be an object of signer name → key or Sigstore identity")
    if len(doc) > MAX_SIGNERS:
        raise AttestationError(f"'trusted_signers' has more than {MAX_SIGNERS} signers")
    out: dict[str, Signer] = {}
    for name, spec in doc.items():
        where = f"trusted_signers[{name!r}]: "
        if not isinstance(name, str) or not SIGNER_NAME.match(name):
            raise AttestationError(f"{where}a signer name is lower-case letters, digits, '.', '_' or '-'")
        if not isinstance(spec, Mapping):
            raise AttestationError(f"{where}must be an object with 'public_key' or 'sigstore'")
        if "public_key" in spec:
            if set(spec) - {"public_key", "keyid"}:
                raise AttestationError(f"{where}a key signer has only 'public_key' and 'keyid'")
            keyid = spec.get("keyid", "")
            if not isinstance(keyid, str) or len(keyid) > 200:
                raise AttestationError(f"{where}'keyid' must be a string")
            out[name] = KeySigner(name=name, public_key=_load_key(spec["public_key"], where), keyid=keyid)
        elif "sigstore" in spec:
            if set(spec) != {"sigstore"}:
                raise AttestationError(f"{where}a Sigstore signer has only 'sigstore'")
            ident = spec["sigstore"]
            if not isinstance(ident, Mapping) or set(ident) != {"issuer", "identity"}:
                raise AttestationError(f"{where}'sigstore' must be {{\"issuer\": OIDC issuer URL, \"identity\": "
                                       "the certificate's SAN (workflow URL or email)}")
            issuer, identity = ident["issuer"], ident["identity"]
            if not isinstance(issuer, str) or urlparse(issuer).scheme != "https" or not urlparse(issuer).netloc:
                raise AttestationError(f"{where}the Sigstore 'issuer' must be an https URL (e.g. "
                                       "https://token.actions.githubusercontent.com)")
            if not isinstance(identity, str) or not identity.strip() or len(identity) > 1000:
                raise AttestationError(f"{where}the Sigstore 'identity' must be the exact certificate SAN")
            out[name] = SigstoreSigner(name=name, issuer=issuer, identity=identity)
        else:
            raise AttestationError(f"{where}must have 'public_key' (PEM) or 'sigstore' ({{issuer, identity}})")
    return out


def _load_key(pem: Any, where: str) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    if not isinstance(pem, str) or "BEGIN PUBLIC KEY" not in pem:
        raise AttestationError(f"{where}'public_key' must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise AttestationError(f"{where}'public_key' is not a readable PEM public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise AttestationError(f"{where}'public_key' must be Ed25519 or ECDSA P-256 (what cosign, in-toto and "
                           "securesystemslib produce); other key types are refused")


# --- verification ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """Who signed a document, or why nobody the gate trusts did."""

    signer: str | None
    reason: str = ""


def _verify_key(signer: KeySigner, data: bytes, sig: bytes) -> bool:
    try:
        if isinstance(signer.public_key, ed25519.Ed25519PublicKey):
            signer.public_key.verify(sig, data)
        else:
            # DER-encoded (r, s), as cosign, securesystemslib and Go's crypto/ecdsa produce.
            signer.public_key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_dsse(document: Document, signers: Sequence[KeySigner], all_keys: Sequence[KeySigner] = ()) -> Verified:
    """The first of ``signers`` whose key verifies a signature over PAE(payloadType, payload)."""
    data = pae(document.payload_type, document.payload)
    for signer in signers:
        if any(_verify_key(signer, data, sig) for _, sig in document.signatures):
            return Verified(signer.name)
    # Why not: signed by a key the policy knows but this gate does not accept, by an unknown key, or tampered.
    for other in all_keys:
        if other not in signers and any(_verify_key(other, data, sig) for _, sig in document.signatures):
            return Verified(None, f"signed by {other.name}, which this gate does not accept")
    if not signers:
        return Verified(None, "the gate names no key signer")
    return Verified(None, "signed by an untrusted key, or the signature does not verify (the payload was "
                          "changed after signing)")


def _shown_identity(san: str) -> str:
    """A SAN fit for evidence and the ledger: workflow URIs as they are, e-mail addresses withheld."""
    if "@" in san and "://" not in san:
        return "an e-mail identity (withheld)"
    return san


def verify_bundle(document: Document, signers: Sequence[SigstoreSigner], trusted_root: Any) -> Verified:
    """Verify a Sigstore bundle offline against ``trusted_root`` (a sigstore ``TrustedRoot`` or None),
    then its certificate identity against ``signers``."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier, policy

    if trusted_root is None:
        return Verified(None, "Sigstore bundles cannot be verified here: no trusted root is configured "
                              "(SIGSTORE_TRUSTED_ROOT)")
    if isinstance(trusted_root, str):  # why the configured root could not be loaded
        return Verified(None, trusted_root)
    bundle = Bundle.from_json(document.bundle_json)
    try:
        # Cryptography and log proofs first (no identity yet): a bad bundle says so whatever the policy names.
        Verifier(trusted_root=trusted_root).verify_dsse(bundle, _AnyIdentity())
    except SigstoreError as exc:
        return Verified(None, f"the Sigstore bundle does not verify against the trusted root: {str(exc)[:200]}")
    for signer in signers:
        try:
            policy.Identity(identity=signer.identity, issuer=signer.issuer).verify(bundle.signing_certificate)
        except SigstoreError:
            continue
        return Verified(signer.name)
    return Verified(None, f"Sigstore identity {_shown_identity(certificate_identity(bundle))} "
                          f"(issuer {certificate_issuer(bundle)}) not allowed by this gate")


class _AnyIdentity:
    """A sigstore verification policy that accepts every identity (sigstore's ``UnsafeNoOp`` logs a warning
    each time): the identity is checked right after, against the gate's signers, to say which one failed."""

    def verify(self, cert: Any) -> None:
        return None


def certificate_identity(bundle: Any) -> str:
    from cryptography.x509 import ExtensionNotFound, RFC822Name, SubjectAlternativeName, UniformResourceIdentifier

    try:
        san = bundle.signing_certificate.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:  # a Fulcio certificate always has one
        return "(none)"
    names = san.get_values_for_type(UniformResourceIdentifier) + san.get_values_for_type(RFC822Name)
    return str(names[0]) if names else "(none)"


def certificate_issuer(bundle: Any) -> str:
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    for oid in ("1.3.6.1.4.1.57264.1.8", "1.3.6.1.4.1.57264.1.1"):
        try:
            ext = bundle.signing_certificate.extensions.get_extension_for_oid(ObjectIdentifier(oid))
        except ExtensionNotFound:  # try the older OID
            continue
        value = ext.value.value
        # 1.8 is DER UTF8String (tag 0x0c, short length); 1.1 is raw bytes.
        if oid.endswith(".8") and len(value) > 2 and value[0] == 0x0C:
            value = value[2:]
        return bytes(value).decode(errors="replace")
    return "(unknown)"


def load_trusted_root(path: str) -> Any:
    """sigstore's ``TrustedRoot`` from a trusted_root.json file ("" → None); cached per path and mtime, so
    replacing the file (the documented refresh) takes effect without a restart. Raises AttestationError."""
    if not path:
        return None
    import os

    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as exc:
        raise AttestationError(f"the Sigstore trusted root {path} cannot be read ({exc.strerror})") from None
    return _load_trusted_root(path, mtime)


@functools.lru_cache(maxsize=4)
def _load_trusted_root(path: str, mtime: int) -> Any:
    from sigstore.models import TrustedRoot

    try:
        return TrustedRoot.from_file(path)
    except Exception as exc:  # pydantic validation, JSON, or sigstore's own: all mean "not a trusted root"
        raise AttestationError(f"the Sigstore trusted root {path} is not a valid trusted_root.json: "
                               f"{str(exc)[:200]}") from None


# --- the gate --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateSpec:
    predicate_type: str
    signers: tuple[str, ...]
    builder_ids: tuple[str, ...] = ()
    allow_warned: bool = False


@dataclass(frozen=True)
class Check:
    """One document's outcome under a gate (shown with the evidence; never personal data)."""

    attestation: str
    kind: str
    predicate_type: str
    subject_digests: tuple[str, ...]
    signer: str | None
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"attestation": self.attestation, "kind": self.kind, "predicate_type": self.predicate_type,
                "subject_digests": list(self.subject_digests), "signer": self.signer, "passed": self.passed,
                "reason": self.reason}


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    detail: str
    #: The envelope SHA-256 of the attestation that satisfied the gate (None: none did).
    observed: str | None
    checks: tuple[Check, ...] = field(default_factory=tuple)


def _conditions(spec: GateSpec, statement: Mapping[str, Any]) -> str:
    """"" when the predicate meets the gate's conditions, else why not."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return "the statement has no predicate object"
    if spec.builder_ids:
        run = predicate.get("runDetails")
        builder = run.get("builder") if isinstance(run, Mapping) else None
        builder_id = builder.get("id") if isinstance(builder, Mapping) else None
        if builder_id not in spec.builder_ids:
            return f"SLSA builder {builder_id!r} is not an allowed builder"
    if spec.predicate_type == TEST_RESULT_V01:
        result = predicate.get("result")
        allowed = ("PASSED", "WARNED") if spec.allow_warned else ("PASSED",)
        if result not in allowed:
            return f"test result {result!r} (needs {' or '.join(allowed)})"
    return ""


def check_gate(spec: GateSpec, documents: Sequence[Document], artifact_digest: str,
               trusted: Mapping[str, Signer], trusted_root: Any) -> GateOutcome:
    """Does any document satisfy the gate for a version whose artifact digest is ``artifact_digest``?"""
    names = " or ".join(spec.signers)
    if not artifact_digest:
        return GateOutcome(False, "the version has no artifact digest computed here, so no attestation can be "
                                  "bound to it", None)
    keys = [trusted[n] for n in spec.signers if isinstance(trusted.get(n), KeySigner)]
    identities = [trusted[n] for n in spec.signers if isinstance(trusted.get(n), SigstoreSigner)]
    all_keys = [s for s in trusted.values() if isinstance(s, KeySigner)]
    checks: list[Check] = []
    for doc in documents:
        if doc.kind == KIND_SIGSTORE:
            verified = verify_bundle(doc, identities, trusted_root)  # type: ignore[arg-type]
        else:
            verified = verify_dsse(doc, keys, all_keys)  # type: ignore[arg-type]
        reason = verified.reason
        if not reason and doc.predicate_type != spec.predicate_type:
            reason = f"predicate type {doc.predicate_type} (the gate needs {spec.predicate_type})"
        if not reason and artifact_digest not in doc.subject_digests:
            reason = f"subject digest differs: the statement names {', '.join(doc.subject_digests) or 'no sha256'}"
        if not reason:
            reason = _conditions(spec, doc.statement)
        checks.append(Check(attestation=f"sha256:{doc.sha256}", kind=doc.kind, predicate_type=doc.predicate_type,
                            subject_digests=doc.subject_digests, signer=verified.signer, passed=not reason,
                            reason=reason or "verified"))
    winner = next((c for c in checks if c.passed), None)
    if winner is not None:
        return GateOutcome(True, f"{spec.predicate_type} signed by {winner.signer} for {artifact_digest}",
                           winner.attestation, tuple(checks))
    detail = f"no attestation of type {spec.predicate_type} signed by {names} for {artifact_digest}"
    relevant = [c for c in checks if c.predicate_type == spec.predicate_type] or checks
    if relevant:
        detail += f" ({relevant[-1].reason})"
    return GateOutcome(False, detail, None, tuple(checks))
