"""Augmentation of a small dataset through a teacher model behind any OpenAI-compatible endpoint: paraphrases,
synthetic conversations and back-translations, filtered automatically, then accepted, edited or rejected by reviewers
before anything becomes training data.

    teacher      the endpoint: settings, the API key (environment only), one chat request with the client's retries
    methods      the three methods: editable prompt templates, the requests they make, strict parsing of replies
    job          the supervised job (kind "augment"): concurrent requests under a cap and a budget, each result saved
                 as it arrives, resumable without asking twice
    filters      the checks every candidate passes before review: format, PII and secrets, language, length,
                 duplicates, near copies of the locked test set or the validation set
    gate         the review campaign (kind "augment") and the child dataset version of what reviewers accepted
"""
