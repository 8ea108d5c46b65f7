"""The daemon and the command line: configuration, event consumer, scheduler, delivery workers."""
