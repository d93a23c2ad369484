"""xinyong_gateway: the credit-information gateway service (ingest, storage, command line)."""
