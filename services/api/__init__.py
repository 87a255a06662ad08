"""The job API (app: FastAPI server) and its client (used by `simko submit / status / ...`)."""
