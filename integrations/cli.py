"""`tcledger integrations`: create and list integration clients from the command line."""

from __future__ import annotations

import argparse
import sys

from infra.wiring import Services
from integrations.clients import ClientError, IntegrationClients


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    integrations = commands.add_parser("integrations", help="integration clients")
    actions = integrations.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue an integration client's token "
                                               "(printed once)")
    create.add_argument("--recipient", required=True,
                        help="the recipient name that participants' consents must give")
    create.add_argument("--categories", default="",
                        help="comma-separated consent categories to receive")
    create.add_argument("--ingests", default="",
                        help="comma-separated pushes it may make: lab-results, movements")
    create.add_argument("--external-id-systems", default="DOC",
                        help="comma-separated identifier systems whose numbers the feed "
                             "carries (default DOC; empty for none)")
    create.add_argument("--name", help="the token's name (default: the recipient)")
    actions.add_parser("list", help="list integration clients (never their secrets)")


def run(services: Services, args: argparse.Namespace) -> int:
    clients = IntegrationClients(services.store, services.tokens)
    if args.action == "list":
        for client in clients.list():
            print("\t".join([client.token_id, client.recipient,
                             ",".join(sorted(client.categories)) or "-",
                             ",".join(sorted(client.ingests)) or "-",
                             ",".join(client.external_id_systems) or "-"]))
        return 0
    try:
        client, secret = clients.create(recipient=args.recipient,
                                        categories=_listed(args.categories),
                                        ingests=_listed(args.ingests), name=args.name,
                                        external_id_systems=_listed(args.external_id_systems))
    except ClientError as exc:
        print(f"tcledger: {exc}", file=sys.stderr)
        return 2
    print(secret)
    print(f"integration {client.token_id}: recipient {client.recipient!r}, categories "
          f"{', '.join(sorted(client.categories)) or '-'}, ingests "
          f"{', '.join(sorted(client.ingests)) or '-'} (shown once; store it now)",
          file=sys.stderr)
    return 0


def _listed(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
