"""What a server process and a proxy process share: flags, settings, lifecycle, signals, logs."""
