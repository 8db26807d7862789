"""`tcledger integrations`: create and list integration clients from the command line;
`tcledger webhooks`: subscriptions, deliveries, dead letters, redelivery and the worker."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

from infra.wiring import Services
from integrations.clients import ClientError, IntegrationClients
from integrations.webhook_deliveries import STATES
from integrations.wiring import Webhooks, build_webhook_worker, build_webhooks


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

    webhooks = commands.add_parser("webhooks", help="webhook subscriptions and deliveries")
    hooks = webhooks.add_subparsers(dest="action", required=True)
    hooks.add_parser("list", help="every subscription: id, client, state, url")
    listing = hooks.add_parser("deliveries", help="deliveries in log order (never bodies)")
    listing.add_argument("--subscription", help="one subscription's")
    listing.add_argument("--state", choices=STATES, help="only this state (dead: the dead "
                                                         "letters)")
    listing.add_argument("--limit", type=int, default=100)
    hooks.add_parser("dead", help="the dead letters (deliveries --state dead)")
    redeliver = hooks.add_parser(
        "redeliver", help="queue dead letters again, now, with a fresh retry schedule")
    which = redeliver.add_mutually_exclusive_group(required=True)
    which.add_argument("--subscription", help="a subscription's dead letters; a "
                                              "subscription disabled by a 410 is enabled")
    which.add_argument("--delivery", help="one dead letter: SUBSCRIPTION/POSITION")
    which.add_argument("--all", action="store_true", help="every dead letter")
    hooks.add_parser("run", help="deliver webhooks only (`projections run` also does)")


def run_webhooks(services: Services, args: argparse.Namespace) -> int:
    webhooks = build_webhooks(services)
    if args.action == "list":
        for s in webhooks.subscriptions.all():
            print("\t".join([s.subscription_id, s.token_id, s.state, s.url,
                             ",".join(sorted(s.event_types)) or "*"]))
        return 0
    if args.action in ("deliveries", "dead"):
        state = "dead" if args.action == "dead" else args.state
        rows = webhooks.deliveries.list(getattr(args, "subscription", None), state,
                                        limit=getattr(args, "limit", 1000))
        for r in rows:
            print("\t".join(str(r[k] if r[k] is not None else "-") for k in (
                "id", "event_id", "event_type", "state", "attempts", "last_status",
                "last_error", "last_attempt_at")))
        return 0
    if args.action == "redeliver":
        return _redeliver(webhooks, args)
    return int(_deliver_forever(services, webhooks))


def _redeliver(webhooks: Webhooks, args: argparse.Namespace) -> int:
    delivery = None
    if args.delivery is not None:
        subscription_id, _, position = args.delivery.partition("/")
        if not position.isdigit():
            print("tcledger: --delivery takes SUBSCRIPTION/POSITION (see `webhooks dead`)",
                  file=sys.stderr)
            return 2
        delivery = (subscription_id, int(position))
    if args.subscription is not None:
        if webhooks.subscriptions.of(args.subscription) is None:
            print(f"tcledger: no subscription {args.subscription}", file=sys.stderr)
            return 2
        webhooks.subscriptions.enable(args.subscription)
    count = webhooks.deliveries.redeliver(subscription_id=args.subscription,
                                          delivery=delivery)
    print(f"queued {count} dead letter(s) again", file=sys.stderr)
    return 0 if count or args.subscription else 1


def _deliver_forever(services: Services, webhooks: Webhooks) -> Any:
    access_log = importlib.import_module("audit.wiring").build_access_log(services)
    worker = build_webhook_worker(services, webhooks, access_log)
    print("delivering webhooks; Ctrl-C stops", file=sys.stderr)
    worker.start(services.settings.webhook_poll_interval)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        worker.close()
    return 0


def run(services: Services, args: argparse.Namespace) -> int:
    if args.command == "webhooks":
        return run_webhooks(services, args)
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
