"""The `tcledger` command: serve, tokens, keys and policy checks."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domain.policy import PolicyError, load_policy
from infra.keys import KeyEncryptionKey, KeyError_
from infra.logging import Stderr, configure_logging
from infra.settings import Settings
from infra.tokens import ROLES, TokenError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tcledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    tokens = commands.add_parser("tokens", help="manage bearer tokens")
    token_commands = tokens.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="issue a token (printed once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True)
    create.add_argument("--facility")
    token_commands.add_parser("list", help="list tokens (never their secrets)")
    revoke = token_commands.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")

    keys = commands.add_parser("keys", help="key management")
    key_commands = keys.add_subparsers(dest="action", required=True)
    generate = key_commands.add_parser("generate", help="write a new key-encryption key file")
    generate.add_argument("path", type=Path)
    rotate = key_commands.add_parser("rotate", help="re-wrap every data key under a new KEK")
    rotate.add_argument("new_kek_file", type=Path)

    projections = commands.add_parser("projections", help="read models")
    projection_commands = projections.add_subparsers(dest="action", required=True)
    run = projection_commands.add_parser(
        "run", help="keep the views and the ledger current (a separate process)")
    run.add_argument("--nice", type=int, default=0,
                     help="lower this process's CPU priority by this much (the server's "
                          "child uses 10)")
    rebuild = projection_commands.add_parser("rebuild", help="rebuild views from the log")
    rebuild.add_argument("name", nargs="?", help="one projection (default: all)")
    rebuild.add_argument("--jobs", type=int, default=1,
                         help="processes that rebuild at the same time on PostgreSQL, each "
                              "taking a share of the participants (one per CPU)")
    rebuild.add_argument("--only", help=argparse.SUPPRESS)  # views, for a --jobs child
    rebuild.add_argument("--part", type=int, help=argparse.SUPPRESS)  # its partition
    projection_commands.add_parser("status", help="position and lag of each projection")

    audit = commands.add_parser("audit", help="the verifiable ledger")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    verify = audit_commands.add_parser(
        "verify", help="recompute every leaf and check the ledger and the signed heads")
    verify.add_argument("--public-key", type=Path,
                        help="the tree-head public key (PEM) to trust (default: the public "
                             "half of TCLEDGER_AUDIT_KEY_FILE)")
    audit_commands.add_parser("sign", help="bring the ledger up to date and sign its head now")
    keygen = audit_commands.add_parser("keygen", help="write a new tree-head signing key (PEM)")
    keygen.add_argument("path", type=Path)
    export = audit_commands.add_parser("export", help="write a participant's audit bundle")
    export.add_argument("participant")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    verify_bundle = audit_commands.add_parser(
        "verify-bundle", help="check an audit bundle offline: no database, no network")
    verify_bundle.add_argument("path", type=Path)
    verify_bundle.add_argument("--public-key", type=Path,
                               help="also require the bundle's key to be this one (PEM)")

    db = commands.add_parser("db", help="the database: tables and the application's role")
    db_commands = db.add_subparsers(dest="action", required=True)
    db_commands.add_parser("migrate", help="make every missing table (run as the owner)")
    grant = db_commands.add_parser(
        "grant-app-role", help="PostgreSQL: give an existing role exactly what the "
                               "application needs (INSERT and SELECT on the events)")
    grant.add_argument("role")
    # integrations/ builds on infra: its commands are added, and run, from there.
    importlib.import_module("integrations.cli").add_commands(commands)

    policy = commands.add_parser("policy", help="program policy files")
    policy_commands = policy.add_subparsers(dest="action", required=True)
    check = policy_commands.add_parser("check", help="validate a policy file")
    check.add_argument("path", type=Path)

    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (PolicyError, KeyError_, TokenError) as exc:
        print(f"tcledger: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.command == "policy":
        loaded = load_policy(args.path)
        print(f"{args.path}: program {loaded.code!r}, {len(loaded.stages)} stages: valid")
        return 0
    if args.command == "keys" and args.action == "generate":
        KeyEncryptionKey.generate_file(args.path)
        print(f"wrote a new key-encryption key to {args.path} (mode 0600)")
        return 0
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "audit" and args.action in ("verify-bundle", "keygen"):
        offline = importlib.import_module("audit.cli")  # no database, no settings needed
        return int(offline.verify_bundle_command(args) if args.action == "verify-bundle"
                   else offline.keygen_command(args))

    from infra.wiring import build
    configure_logging(settings.log_level, stream=Stderr())  # stdout is the command's answer
    if args.command == "db" and args.action == "migrate":
        settings = settings.model_copy(update={"create_tables": True})
    services = build(settings)
    try:
        if args.command == "tokens":
            return _tokens(services, args)
        if args.command == "projections":
            return _projections(services, args)
        if args.command == "audit":
            return int(importlib.import_module("audit.cli").run(services, args))
        if args.command == "db":
            return _db(services, args)
        if args.command in ("integrations", "webhooks"):
            return int(importlib.import_module("integrations.cli").run(services, args))
        count = services.keys.rotate(KeyEncryptionKey.from_file(args.new_kek_file))
        print(f"re-wrapped {count} data keys; now point TCLEDGER_KEK_FILE at the new key")
        return 0
    finally:
        services.close()


def _tokens(services: object, args: argparse.Namespace) -> int:
    store = services.tokens  # type: ignore[attr-defined]
    if args.action == "create":
        caller, secret = store.create(role=args.role, name=args.name, facility=args.facility)
        print(secret)
        print(f"token {caller.token_id}: role {caller.role}"
              + (f", facility {caller.facility}" if caller.facility else "")
              + " (shown once; store it now)", file=sys.stderr)
    elif args.action == "list":
        for row in store.list():
            print("\t".join(str(row[k] or "-") for k in
                            ("token_id", "role", "facility", "name", "created_at", "revoked_at")))
    elif not store.revoke(args.token_id):
        print(f"tcledger: no active token {args.token_id}", file=sys.stderr)
        return 1
    return 0


# Tables whose rows, once written, are never changed: the application's role may only add
# to them. The triggers refuse changes to the events even to their owner.
APPEND_ONLY = ("tcledger_ledger_leaves", "tcledger_ledger_nodes", "tcledger_ledger_heads")


def _db(services: Any, args: argparse.Namespace) -> int:
    if args.action == "migrate":
        # Every table is made by the objects that use it.
        integrations = importlib.import_module("integrations.wiring")
        webhooks = integrations.build_webhooks(services)
        runner = importlib.import_module("projections.wiring").build_runner(
            services, extra=[webhooks.outbox])
        audit = importlib.import_module("audit.wiring")
        audit.build_ledger(services)
        audit.build_access_log(services)
        integrations.build_integrations(services, runner, webhooks)
        print("every table is in place", file=sys.stderr)
        return 0
    if not services.settings.uses_postgres:
        print("tcledger: grant-app-role is for PostgreSQL; SQLite has no roles", file=sys.stderr)
        return 2
    from psycopg.sql import SQL, Identifier
    events = services.ledger.recorder.events_table_name
    role = Identifier(args.role)
    with services.store.datastore.get_connection() as conn:
        schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE "
            r"'tcledger\_%%' ORDER BY tablename", (schema,)).fetchall()]
        with conn.transaction():
            conn.execute(SQL("GRANT USAGE ON SCHEMA {} TO {}").format(Identifier(schema), role))
            for table in tables:
                rights = "SELECT, INSERT" if table == events or table in APPEND_ONLY \
                    else "SELECT, INSERT, UPDATE, DELETE"
                conn.execute(SQL("GRANT " + rights + " ON {} TO {}").format(
                    Identifier(schema, table), role))
            conn.execute(SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                Identifier(schema), role))
    print(f"granted {args.role}: INSERT and SELECT on {events} and the ledger, and what the "
          f"views, keys and tokens need on {len(tables) - 1 - len(APPEND_ONLY)} more tables; "
          "run the application as it with TCLEDGER_CREATE_TABLES=false", file=sys.stderr)
    return 0


def _projections(services: Any, args: argparse.Namespace) -> int:
    # The runner lives in projections/, which builds on infra: imported when asked for.
    # The webhook outbox (integrations/) runs with the views, in the same transactions.
    integrations = importlib.import_module("integrations.wiring")
    webhooks = integrations.build_webhooks(services)
    runner = importlib.import_module("projections.wiring").build_runner(
        services, extra=[webhooks.outbox])
    if args.action == "status":
        for p in runner.status():
            print(f"{p['name']}\tposition {p['position']}\tlag {p['lag']}")
        return 0
    if args.action == "rebuild":
        if args.name and args.name not in runner.projections:
            print(f"tcledger: no projection {args.name!r}; known: "
                  f"{', '.join(runner.projections)}", file=sys.stderr)
            return 2
        return _rebuild(runner, args)
    if args.nice:
        os.nice(args.nice)
    audit = importlib.import_module("audit.wiring")
    keeper = audit.build_keeper(audit.build_ledger(services), services.settings,
                                audit.build_access_log(services))
    worker = integrations.build_webhook_worker(services, webhooks, audit.build_access_log(
        services))
    print("keeping the views and the audit ledger current, delivering webhooks; Ctrl-C "
          "stops", file=sys.stderr)
    runner.start()
    keeper.start()
    worker.start(services.settings.webhook_poll_interval)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        worker.close()
        keeper.stop()
        runner.stop()
    return 0


def _rebuild(runner: Any, args: argparse.Namespace) -> int:
    """Rebuilds the views; with --jobs N on PostgreSQL, N processes rebuild a share of the
    participants each (projections.partitions): this one starts the others, takes the
    first share, finishes any share a failed child left, then the views that do not split."""
    started = time.monotonic()
    if args.only is not None:  # a child of a parallel rebuild: one partition
        parent = os.getppid()

        def orphaned(*_: Any) -> None:  # stop with the parent (between batches: exactly once)
            if os.getppid() != parent:
                raise SystemExit(3)
        runner.rebuild_part(args.only.split(","), args.part or 0, progress=orphaned)
        return 0
    names = [args.name] if args.name else [
        n for n, p in runner.projections.items() if getattr(p, "rebuildable", True)]
    children: list[subprocess.Popen[bytes]] = []

    def helper(split: list[str], index: int) -> Callable[[], object]:
        child = subprocess.Popen([sys.executable, "-m", "infra.cli", "projections", "rebuild",
                                  "--only", ",".join(split), "--part", str(index)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        children.append(child)
        return child.wait
    runner.rebuild(args.name, progress=_progress_bar, parts=max(args.jobs, 1), helpers=helper)
    failed = [child.args for child in children if child.returncode != 0]
    if failed:  # its share was finished here; say so all the same
        print(f"\ntcledger: a rebuild process failed (its share was rebuilt here): {failed}",
              file=sys.stderr)
    print(f"\nrebuilt {', '.join(names)} from {runner.log.head()} log entries in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _progress_bar(name: str, position: int, head: int) -> None:
    done = min(position / head, 1.0) if head else 1.0
    bar = "#" * int(done * 40)
    print(f"\r[{bar:<40}] {done:6.1%} {position}/{head} {name}", end="", file=sys.stderr,
          flush=True)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from infra.wiring import build

    configure_logging(settings.log_level)
    services = build(settings)
    if services.generated_dev_key:
        print("tcledger: generated a development key-encryption key in "
              f"{settings.var_dir}/dev-kek.key (never use it in production)", file=sys.stderr)
    if not services.tokens.has_active_admin():
        _, secret = services.tokens.create(role="admin", name="bootstrap-admin")
        print(f"\n  bootstrap admin token (shown once): {secret}\n"
              "  create staff tokens with POST /admin/tokens or `tcledger tokens create`\n",
              file=sys.stderr, flush=True)
    app_module = __import__("api.app", fromlist=["create_app"])
    app = app_module.create_app(services)
    uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port,
                log_config=None, access_log=False, server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
