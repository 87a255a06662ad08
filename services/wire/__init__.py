"""The wire: everything that crosses a process boundary, and nothing else of ours.

    messages.py         PromptGroup / Sample / ScoredGroup and their one codec (msgpack, versioned)
    streams.py          Redis Streams producer/consumer and the job-state KV (the only module importing redis)
    verdicts.py         Verdict: the verifier's typed answer (HTTP body, in-process result)
    verifier_client.py  the HTTP client of the verifier service (batching, retries, deadline)
    weights.py          weight transport: WeightPublisher (learner side) / WeightSource (rollout side),
                        in-process and shared-directory transports
    weight_registry.py  the Ray object-store transport (a named registry actor per job)

This is the bottom layer (docs/architecture.md): learner/, rollout/ and verifier/ import it and
themselves only; it imports nothing of the project.
"""
