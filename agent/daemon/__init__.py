"""The agent daemon: campaign jobs from the broker, run one at a time (``edgebench-agent serve``)."""
