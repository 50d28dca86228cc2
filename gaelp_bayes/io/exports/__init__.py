"""Readers and writers of real export formats: GA4 BigQuery, PostHog, Criteo (issue 3)."""
