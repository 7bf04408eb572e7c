"""newsflow ingest stages: plain Python, no Prefect, no SQL."""
