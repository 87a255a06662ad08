"""The control plane: the JobSpec, the job store, the controller and its training loop, the prompt
feeder, the rollout pool and the local stack (redis-server / verifier started for a job)."""
