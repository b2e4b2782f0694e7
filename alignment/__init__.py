"""RLHF-lite: candidate pairs, reward models with uncertainty, acquisition, the active-learning loop, TRL DPO/RM."""
