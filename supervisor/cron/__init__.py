"""pycrond: the cron runner (supercronic's replacement), a supervised service of the pod."""
