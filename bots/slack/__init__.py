"""Parley in Slack: DMs, mentions and threads, streamed within Slack's limits (`parley slack`)."""
