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
    create.add_argument("--categories", required=True,
                        help="comma-separated consent categories to receive")
    create.add_argument("--name", help="the token's name (default: the recipient)")
    actions.add_parser("list", help="list integration clients (never their secrets)")


def run(services: Services, args: argparse.Namespace) -> int:
    clients = IntegrationClients(services.store, services.tokens)
    if args.action == "list":
        for client in clients.list():
            print(f"{client.token_id}\t{client.recipient}\t{','.join(sorted(client.categories))}")
        return 0
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    try:
        client, secret = clients.create(recipient=args.recipient, categories=categories,
                                        name=args.name)
    except ClientError as exc:
        print(f"tcledger: {exc}", file=sys.stderr)
        return 2
    print(secret)
    print(f"integration {client.token_id}: recipient {client.recipient!r}, categories "
          f"{', '.join(sorted(client.categories))} (shown once; store it now)", file=sys.stderr)
    return 0
