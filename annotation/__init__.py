"""Label Studio client, the label ledger, simulated annotators, agreement and aggregation."""
