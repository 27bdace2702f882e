"""Edge tuning with a trained router: edge_only's training, a failure classifier routes at evaluation.

At evaluation a failure classifier on the local model's features (router_classifier.py) offloads
the share tau it is least sure of.
"""

from trainer.methods.edge_only import EdgeOnly


def make_method(cfg) -> EdgeOnly:
    return EdgeOnly("router")
