"""edgebench agent: runs ASR models on a device and measures them."""

