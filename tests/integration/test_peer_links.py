"""Peer links on a real key store: each side resolves the other until the link key is
destroyed; a sealed peer does not resolve for another holder or when altered."""

from __future__ import annotations

from uuid import UUID, uuid4

from infra.peers import PeerLinks


def test_a_link_resolves_both_ways_until_its_key_is_destroyed(services):
    links = PeerLinks(services.keys)
    a, b = uuid4(), uuid4()
    for_a, for_b = links.link(a, b)
    assert for_a.link_id == for_b.link_id
    assert str(b) not in for_a.sealed and str(a) not in for_b.sealed
    assert links.resolve(for_a.link_id, for_a.sealed, a) == b
    assert links.resolve(for_b.link_id, for_b.sealed, b) == a
    assert links.resolve(for_a.link_id, for_a.sealed, b) is None  # bound to its holder
    altered = for_a.sealed[:-4] + ("AAAA" if not for_a.sealed.endswith("AAAA") else "BBBB")
    assert links.resolve(for_a.link_id, altered, a) is None
    assert links.resolve(for_a.link_id, "not base64!", a) is None
    assert links.resolve(str(uuid4()), for_a.sealed, a) is None  # no such link
    services.keys.destroy_data_key(UUID(for_a.link_id))
    assert links.resolve(for_a.link_id, for_a.sealed, a) is None
    assert links.resolve(for_b.link_id, for_b.sealed, b) is None
