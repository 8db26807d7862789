"""Webhook rules with no I/O: the retry schedule with its jitter and the URLs and event
types a subscription may name."""

from __future__ import annotations

import random

import pytest

from infra.settings import retry_delays
from integrations.clients import IntegrationClient
from integrations.webhook_deliveries import JITTER, RetrySchedule
from integrations.webhooks import SubscriptionError, valid_event_types, valid_url

STANDARD = retry_delays("0,5,300,1800,7200,18000,36000,50400,72000,86400")


def test_the_default_schedule_is_standard_webhooks_about_75_hours() -> None:
    assert len(STANDARD) == 10 and 75 * 3600 < sum(STANDARD) < 76 * 3600


@pytest.mark.parametrize("seed", range(20))
def test_retries_follow_the_schedule_within_the_jitter_then_stop(seed: int) -> None:
    schedule = RetrySchedule(STANDARD, random.Random(seed))
    for attempts in range(1, len(STANDARD)):
        delay = schedule.after_failure(attempts)
        assert delay is not None
        base = STANDARD[attempts]
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert schedule.after_failure(len(STANDARD)) is None  # the last attempt failed: dead


def test_retry_after_only_lengthens_the_wait() -> None:
    schedule = RetrySchedule((0, 1, 1), random.Random(1))
    assert schedule.after_failure(1, retry_after=120) == 120
    assert schedule.after_failure(1, retry_after=0) < 2
    assert schedule.after_failure(1, retry_after=10**9) == 86400


@pytest.mark.parametrize("bad", ["", "x", "1,,-2", "nan", "inf", "5,abc"])
def test_a_bad_schedule_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        retry_delays(bad)


@pytest.mark.parametrize("url", ["https://parole.example.test/hooks",
                                 "http://127.0.0.1:8080/x?y=1"])
def test_good_urls(url: str) -> None:
    assert valid_url(f"  {url} ") == url


@pytest.mark.parametrize("url", ["ftp://h/x", "mailto:a@b", "https://", "http://u:p@h/",
                                 "https://h/#frag", "https://h:99999/", "https://h:0/",
                                 "https://h/a b", "x" * 2001, "/relative"])
def test_bad_urls_name_the_field(url: str) -> None:
    with pytest.raises(SubscriptionError) as refused:
        valid_url(url)
    assert refused.value.field == "url"


def test_event_types_must_be_known_and_within_the_clients_categories() -> None:
    client = IntegrationClient("t", "n", "R", frozenset({"discharge"}))
    assert valid_event_types(client, ["tcledger.participant.discharged",
                                      "tcledger.participant.entry-corrected"])
    for bad in (["tcledger.participant.stage-promoted"], ["discharged"]):
        with pytest.raises(SubscriptionError):
            valid_event_types(client, bad)
