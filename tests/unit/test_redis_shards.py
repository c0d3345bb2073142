"""Cluster shard states from a ``CLUSTER NODES`` reply (no server)."""

from __future__ import annotations

from f2f_cli.redis.shards import Shard, ShardState, shards_from_nodes


def test_shards_are_classified_from_cluster_nodes() -> None:
    nodes = {
        "127.0.0.1:7000@17000": {"node_id": "a", "flags": "master,fail", "master_id": "-", "slots": [["0", "99"]]},
        "127.0.0.2:7000": {"node_id": "b", "flags": "slave", "master_id": "a", "slots": []},
        "127.0.0.3:7000": {"node_id": "c", "flags": "myself,master", "master_id": "-", "slots": [["100", "16383"]]},
        "127.0.0.4:7000": {"node_id": "d", "flags": "master,pfail", "master_id": "-", "slots": [["5", "5"]]},
        "127.0.0.5:7000": {"node_id": "e", "flags": "slave,fail", "master_id": "d", "slots": []},
        "127.0.0.6:7000": {"node_id": "f", "flags": "master,fail", "master_id": "-", "slots": []},  # replaced
    }
    assert shards_from_nodes(nodes) == [
        Shard("127.0.0.1:7000", 100, ShardState.FAILING_OVER),
        Shard("127.0.0.3:7000", 16284, ShardState.OK),
        Shard("127.0.0.4:7000", 1, ShardState.LOST),
    ]


def test_a_raw_cluster_nodes_reply_parses_into_what_the_classifier_reads() -> None:
    # The fallback of shard_states (a client that could not start) parses the reply with redis-py's own helper,
    # an internal: an upgrade that changes its output fails here.
    from redis._parsers.helpers import parse_cluster_nodes

    raw = (b"a1 127.0.0.1:7000@17000 master,fail - 0 0 1 connected 0-99\n"
           b"b1 127.0.0.2:7000@17000 slave a1 0 0 1 connected\n"
           b"c1 127.0.0.3:7000@17000 myself,master - 0 0 2 connected 100-16383\n")
    nodes = parse_cluster_nodes(raw)
    assert shards_from_nodes(nodes) == [
        Shard("127.0.0.1:7000", 100, ShardState.FAILING_OVER),
        Shard("127.0.0.3:7000", 16284, ShardState.OK),
    ]
