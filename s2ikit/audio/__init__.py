"""Audio: decoding, resampling, FLAC storage and the log-mel features the speech encoder reads."""
