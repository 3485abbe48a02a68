"""Speed: the FLOP model and matmul limit of every architecture (flops.py, limit.py), measured training and
decoding throughput (throughput.py), where the time goes (profile.py), and peer toolkits at one configuration
(peers/)."""

# What `harness bench-peers` runs, in its table's order: the harness's networks, then the peer toolkits. Here and
# not in peers/, whose import loads every runner: the CLI's parser reads these names at every start-up.
HARNESS_NETWORKS = ("harness", "harness-onmt", "harness-onmt-lowmem", "harness-joey")
PEER_TOOLKITS = ("opennmt", "joeynmt")
TOOLKIT_NAMES = (*HARNESS_NETWORKS, *PEER_TOOLKITS)
