"""Peer to peer: gossip rounds, the peer table, the HTTP client of other nodes and the wire codec."""
