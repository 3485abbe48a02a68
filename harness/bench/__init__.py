"""Speed: the FLOP model and matmul limit of every architecture (flops.py, limit.py), measured training and
decoding throughput (throughput.py), where the time goes (profile.py), and peer toolkits at one configuration
(peers/)."""
