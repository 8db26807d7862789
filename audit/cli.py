"""`tcledger audit ...`: verify the ledger, sign a head, export and check bundles."""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from audit.access import Access
from audit.bundle import BundleError, build_bundle, record_decoder, verify_bundle
from audit.ledger import EventRows
from audit.signing import HeadSigner, SigningKeyError, load_public_pem
from audit.verify import verify
from audit.wiring import build_access_log, build_ledger


def run(services: Any, args: argparse.Namespace) -> int:
    try:
        ledger = build_ledger(services)
    except SigningKeyError as exc:
        print(f"tcledger: {exc}", file=sys.stderr)
        return 2
    rows = EventRows(services.store, services.ledger.recorder.events_table_name)
    if args.action == "sign":
        ledger.catch_up()
        print(json.dumps(ledger.sign_head().as_json(), indent=2))
        return 0
    if args.action == "export":
        return _export(services, ledger, rows, args)
    assert ledger.signer is not None
    public_key = ledger.signer.public_key
    if args.public_key is not None:
        public_key = load_public_pem(_read(args.public_key))
    started = time.monotonic()
    report = verify(ledger, rows, public_key,
                    progress=lambda n: print(f"\r{n} leaves checked", end="", file=sys.stderr))
    elapsed = time.monotonic() - started
    print(f"\r{report.leaves} leaves, {report.heads} signed heads checked in {elapsed:.1f} s"
          + (f"; {report.pending} newer events not yet in the ledger" if report.pending else ""),
          file=sys.stderr)
    if report.ok:
        print("ledger verified: every stored event matches its leaf and every signed head")
        return 0
    print(f"TAMPERING DETECTED: {report.findings[0].describe()}")
    for finding in report.findings[1:]:
        print(f"  also: {finding.describe()}")
    return 1


def _export(services: Any, ledger: Any, rows: EventRows, args: argparse.Namespace) -> int:
    try:
        participant = UUID(args.participant)
    except ValueError:
        print(f"tcledger: {args.participant!r} is not a participant id", file=sys.stderr)
        return 2
    try:
        bundle = build_bundle(ledger, rows, participant,
                              decode=record_decoder(services.ledger, participant))
    except BundleError as exc:
        print(f"tcledger: {exc}", file=sys.stderr)
        return 1
    # A bundle carries the decoded record: its export is a read, logged like any other.
    build_access_log(services).record(Access(
        participant_ids=[str(participant)], actor_id=f"cli:{getpass.getuser()}",
        role="operator", facility=None, action="read", method="CLI",
        route="tcledger audit export", status=0, request_id=uuid4().hex,
        remote=socket.gethostname()))
    text = json.dumps(bundle, indent=2)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"wrote the audit bundle of {participant} ({len(bundle['events'])} events) to "
              f"{args.output}", file=sys.stderr)
    return 0


def verify_bundle_command(args: argparse.Namespace) -> int:
    try:
        bundle = json.loads(_read(args.path))
    except (OSError, ValueError) as exc:
        print(f"tcledger: cannot read the bundle {args.path}: {exc}", file=sys.stderr)
        return 2
    pinned = _read(args.public_key) if args.public_key is not None else None
    problems = verify_bundle(bundle, pinned)
    if problems:
        print("BUNDLE DOES NOT VERIFY:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    head = bundle["tree_head"]
    print(f"bundle verified: {len(bundle['events'])} events of {bundle['participant']} are "
          f"leaves of the tree of size {head['tree_size']} signed by key {head['key_id']}"
          + ("" if pinned else " (the bundle's own key: pin one with --public-key)"))
    return 0


def keygen_command(args: argparse.Namespace) -> int:
    try:
        HeadSigner.generate_file(args.path)
    except FileExistsError:
        print(f"tcledger: {args.path} exists; a signing key is never overwritten",
              file=sys.stderr)
        return 2
    signer = HeadSigner.from_file(args.path)
    print(f"wrote a new tree-head signing key to {args.path} (mode 0600), key id "
          f"{signer.key_id}; publish its public half:\n{signer.public_pem}", end="")
    return 0


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
