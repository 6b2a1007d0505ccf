"""Fleet campaigns, the controller side: start, status, cancel, report (``edgebench-collector campaign``)."""
