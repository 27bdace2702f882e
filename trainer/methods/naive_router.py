"""Edge tuning with a naive router: edge_only's training, a random share tau offloaded at evaluation.

At evaluation a random share tau of the queries goes to the cloud (routing.naive_offload), the
rest are answered locally.
"""

from trainer.methods.edge_only import EdgeOnly


def make_method(cfg) -> EdgeOnly:
    return EdgeOnly("naive_router")
