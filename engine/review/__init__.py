"""The review stage: human review campaigns (ratings, blind pairwise votes), their statistics and agreement, and
production A/B traffic analysis."""
