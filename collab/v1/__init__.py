"""Generated gRPC stubs of proto/collab/v1 (do not edit; run scripts/gen-proto.sh)."""
